import GatehouseAuth
import Hummingbird

/// Per-request data, typed. Authentication fills in `identity`; later stages (policy, rate
/// limits) read it from here.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: Identity = .anonymous
    /// The TCP peer's address.
    public var peerAddress: String?
    /// Identity plus request facts, for policy; set by the endpoint after authentication.
    var caller: Caller?

    public init(source: Source) {
        self.coreContext = .init(source: source)
        self.peerAddress = source.channel.remoteAddress?.ipAddress
    }
}
