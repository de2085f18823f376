import GatehouseAuth
import Hummingbird
import NIOCore

/// Per-request data, typed. Authentication fills in `identity`; later stages (policy, rate
/// limits) read it from here.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: Identity = .anonymous
    /// Identity plus request facts, for policy; set by the endpoint after authentication.
    var caller: Caller?
    let channel: any Channel

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// The TCP peer's address (computed when policy asks for it, not on every request).
    public var peerAddress: String? { channel.remoteAddress?.ipAddress }
}
