import GatehouseConfig
import Hummingbird

/// HTTP step 2: who is calling (`spec.auth`): a token, an API key, a client certificate, or
/// anonymous where the endpoint allows it. A refusal is the AuthGate's own answer (401 with
/// the protected resource metadata, 403 for missing scopes). The identity and the request facts
/// policy reads go into the typed request context.
struct AuthenticationStep: HTTPStep {
    let authGate: AuthGate
    let tracing: Bool
    let readsClientCertificates: Bool
    let makeCaller: @Sendable (Request, GatewayRequestContext) -> Caller

    nonisolated(nonsending) func admit(_ request: Request, context: inout GatewayRequestContext) async throws(GatewayError) -> Response? {
        let authStarted = tracing ? Tracer.nowUnixNanos() : 0
        let certificate = readsClientCertificates ? await ClientCertificate.of(context.channel) : nil
        switch await authGate.check(request, certificate: certificate) {
        case .refused(let response): return response
        case .allowed(let identity): context.identity = identity
        }
        var caller = makeCaller(request, context)
        if tracing {
            caller.trace = TraceFacts(traceparent: request.headers.value(.traceparent), tracestate: request.headers.value(.tracestate),
                                      authStarted: authStarted, authEnded: Tracer.nowUnixNanos())
        }
        context.caller = caller
        return nil
    }
}

/// What tracing needs from the HTTP request: W3C trace context headers and when
/// authentication ran (its span is recorded once the request's span exists).
struct TraceFacts: Sendable {
    var traceparent: String?
    var tracestate: String?
    var authStarted: UInt64
    var authEnded: UInt64
}

extension Caller {
    /// The caller of an authenticated request: the identity, and the request facts policy reads
    /// (headers without credentials, the client IP after trusted proxies) only when a policy
    /// reads them — the hot path without policy builds none of them.
    static func of(_ request: Request, context: GatewayRequestContext, endpoint: String, readsFacts: Bool, trustedProxies: [CIDR]) -> Caller {
        guard readsFacts else { return Caller(identity: context.identity, clientIP: nil, headers: [:], endpoint: endpoint) }
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName
            guard !Caller.hiddenHeaders.contains(name) else { continue }
            headers[name] = headers[name].map { $0 + ", " + field.value } ?? field.value
        }
        let ip = MatchPipeline.clientIP(peer: context.peerAddress, forwardedFor: headers["x-forwarded-for"], trusted: trustedProxies)
        return Caller(identity: context.identity, clientIP: ip, headers: headers, endpoint: endpoint)
    }
}
