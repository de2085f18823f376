import Hummingbird
import GatehouseUpstream

/// Who is calling. Until authentication lands every caller is anonymous; the type exists now
/// so upstream sessions are already keyed by identity and never shared across identities.
public struct Identity: Sendable, Hashable {
    public enum Kind: String, Sendable { case anonymous, user, machine }
    public var kind: Kind
    public var subject: String

    public static let anonymous = Identity(kind: .anonymous, subject: "anonymous")

    /// The key upstream channels are pooled by.
    public var channelKey: String { "\(kind.rawValue):\(subject)" }
}

/// Per-request data, typed. Later stages (authentication, policy) fill in their fields here.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: Identity = .anonymous

    public init(source: Source) {
        self.coreContext = .init(source: source)
    }
}
