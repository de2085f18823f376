import GatehouseAuth
import Hummingbird

/// Per-request data, typed. Authentication fills in `identity`; later stages (policy, rate
/// limits) read it from here.
public struct GatewayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var identity: Identity = .anonymous

    public init(source: Source) {
        self.coreContext = .init(source: source)
    }
}
