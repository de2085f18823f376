import Foundation
import GatehouseConfig
import GatehouseUpstream
import Logging
import MCPWire

/// Step 7, the last: sends the request where the route step pointed and hands back what
/// comes back — the finished answer when it is the first thing back, else the stream of what
/// the server sends while it works. Inside: the channel, the circuit breaker, retries of
/// requests that are safe to repeat, a pooled upstream session that ended, and W3C trace
/// context for the upstream.
struct RelayStep: RequestStep {
    let federation: Federation
    let finisher: AnswerFinisher
    let policy: GatewayPolicy?
    let metrics: Metrics
    let logger: Logger
    /// Ends a client's session whose upstream session ended (it must re-initialize).
    let endSession: @Sendable (DownstreamSession) async -> Void

    nonisolated(nonsending) func handle(_ exchange: Exchange, next: nonisolated(nonsending) (Exchange) async throws(GatewayError) -> Outcome) async throws(GatewayError) -> Outcome {
        switch exchange.target {
        case .unrouted:
            throw .internal
        case .fanOutList(let key):
            return .answer(try await federation.mergedList(exchange, key: key, policy: policy, knownTools: finisher.knownTools))
        case .broadcast:
            if let failure = await broadcast(exchange) { throw failure }
            return .answer(.response(id: exchange.id ?? .null, result: .object([:])))
        case .server(let index, let routed):
            let channel: any UpstreamChannel
            do {
                channel = try await exchange.channels.channel(index)
            } catch {
                throw GatewayError(error)
            }
            let session = exchange.session
            let original = exchange.request.rpc
            session?.track(original, server: index)
            let outcome: Outcome
            do {
                outcome = try await send(routed.rpc, to: index, on: channel, exchange: exchange)
            } catch {
                session?.untrack(original)
                throw error
            }
            if case .stream(let stream) = outcome {
                stream.onEnd { _ in session?.untrack(original) }
            } else {
                session?.untrack(original)
            }
            return outcome
        }
    }

    /// `logging/setLevel` on a federated endpoint: every server gets it; failures are logged.
    /// Returns the failure when no server took it.
    private func broadcast(_ exchange: Exchange) async -> GatewayError? {
        var failure: GatewayError?
        var succeeded = false
        for index in federation.servers.indices {
            let name = federation.servers[index].config.name
            do {
                let channel = try await exchange.channels.channel(index)
                for try await event in channel.send(request: exchange.request.rpc) {
                    if case .response(let answer) = event, let error = answer.error {
                        throw UpstreamError(upstream: name, kind: .protocolViolation, detail: "it refused: \(error["message"]?.stringValue ?? "an error")")
                    }
                }
                succeeded = true
            } catch {
                failure = GatewayError(error)
                logger.warning("could not pass on \(exchange.typed.method.name)", metadata: ["upstream": "\(name)", "error": "\(error)"])
            }
        }
        return succeeded ? nil : failure
    }

    private func send(_ message: JSONRPCMessage, to index: Int, on channel: any UpstreamChannel, exchange: Exchange) async throws(GatewayError) -> Outcome {
        let upstream = federation.servers[index]
        if let breaker = upstream.breaker, !breaker.allow() {
            throw .circuitOpen(upstream: upstream.config.name)
        }
        var headers = exchange.obligations.upstreamHeaders
        let traced = propagateTrace(message, server: index, exchange: exchange, headers: &headers)
        exchange.record.update { $0.upstreamStarted = .now }
        var channel = channel
        var events = channel.send(request: traced, headers: headers)
        var first: UpstreamEvent?
        do {
            first = try await firstEvent(&events, request: traced, headers: headers, channel: channel, upstream: upstream, typed: exchange.routedMessage)
        } catch let error as UpstreamError where error.kind == .sessionExpired {
            upstream.breaker?.record(success: true)  // it answered
            if let session = exchange.session {
                // The upstream ended this client's session (restart, expiry, or the client ended
                // it through another replica): end the client's session too, so it re-initializes.
                await endSession(session)
                logger.notice("session ended because its upstream session ended", metadata: ["upstream": "\(error.upstream)"])
                throw .sessionNotFound
            }
            // A pooled upstream session of stateless clients ended: open a new one, once.
            exchange.channels.discard(channel, at: index)
            do {
                channel = try await exchange.channels.channel(index)
                events = channel.send(request: traced, headers: headers)
                first = try await events.next()
                upstream.breaker?.record(success: true)
            } catch {
                upstream.breaker?.record(success: false)
                throw GatewayError(error)
            }
        } catch {
            // Every way out records an outcome, so a half-open breaker's probe always settles.
            upstream.breaker?.record(success: false)
            throw GatewayError(error)
        }
        guard let first else {
            throw .upstream(UpstreamError(upstream: upstream.config.name, kind: .protocolViolation, detail: "no answer"))
        }
        if case .response(let response) = first {
            return .answer(await finisher.finish(response, server: index, exchange: exchange))
        }
        let (finisher, federation) = (self.finisher, self.federation)
        let (pins, serverName) = (federation.pins(of: index), upstream.config.name)
        let stream = AnswerStream(first: first, events: events, channel: channel, upstreamName: upstream.config.name) { message in
            if let pins, message.mcpMethod == .toolsListChanged { pins.invalidate(server: serverName) }
            return finisher.relayInStream(message, exchange: exchange).map { federation.mapFromServer($0, server: index, session: exchange.session) }
        } finish: { response in
            await finisher.finish(response, server: index, exchange: exchange)
        }
        return .stream(stream)
    }

    /// The first event of the request, retrying (with backoff, while the breaker allows) when
    /// the upstream was unavailable and the request is safe to repeat.
    private func firstEvent(_ events: inout UpstreamEvents, request: JSONRPCMessage, headers: [(String, String)], channel: any UpstreamChannel,
                            upstream: UpstreamServer, typed: MCPMessage) async throws -> UpstreamEvent? {
        var attempt = 0
        while true {
            do {
                let first = try await events.next()
                upstream.breaker?.record(success: true)
                return first
            } catch let error as UpstreamError where error.kind == .unavailable && attempt < upstream.config.resilience.retries
                && isSafeToRepeat(typed, server: upstream.config)
            {
                // Safe to repeat and it never reached the server's logic: back off and retry.
                upstream.breaker?.record(success: false)
                attempt += 1
                logger.notice("retrying an upstream request", metadata: ["upstream": "\(upstream.config.name)", "attempt": "\(attempt)", "error": "\(error.detail)"])
                metrics.increment("gatehouse_upstream_retries_total", [upstream.config.name])
                try? await Task.sleep(for: .milliseconds(Int64(upstream.config.resilience.retryBackoffSeconds * 1000 * Double(1 << (attempt - 1)))))
                if let breaker = upstream.breaker, !breaker.allow() { throw error }
                events = channel.send(request: request, headers: headers)
            }
        }
    }

    /// Requests a retry cannot harm: lists and reads, and calls to tools annotated idempotent
    /// when the server's config allows retrying them.
    func isSafeToRepeat(_ message: MCPMessage, server: ServerConfig) -> Bool {
        guard let request = message.request else { return false }
        if request.method.isReadOnly { return true }
        guard case .toolsCall(let name, _) = request, server.resilience.retryIdempotentTools else { return false }
        return policy?.tool(server: server.name, name: name)?["annotations"]?["idempotentHint"]?.boolValue == true
    }

    /// The trace context the upstream gets: the CLIENT span of this call, or (a caller that
    /// asked not to sample) the caller's own context, passed on unchanged (W3C). In the HTTP
    /// headers always; in `params._meta` for 2026-07-28 servers and where the client put it.
    private func propagateTrace(_ message: JSONRPCMessage, server index: Int, exchange: Exchange, headers: inout [(String, String)]) -> JSONRPCMessage {
        guard exchange.span != nil || exchange.caller.trace != nil else { return message }
        let server = federation.servers[index]
        let propagated: (traceparent: String, tracestate: String?)
        if let span = exchange.span {
            let client = span.child(span.name, kind: .client)
            client.setAttribute("gatehouse.server", .string(server.config.name))
            if case .http(let http) = server.config.transport, let url = URLComponents(string: http.url) {
                client.setAttribute("server.address", .string(url.host ?? ""))
                if let port = url.port { client.setAttribute("server.port", .int(port)) }
            }
            exchange.record.update { $0.clientSpan = client }
            propagated = (client.context.traceparent, client.context.traceState)
        } else if let meta = exchange.request.rpc.params?["_meta"], let parent = meta["traceparent"]?.stringValue {
            propagated = (parent, meta["tracestate"]?.stringValue)
        } else if let parent = exchange.caller.trace?.traceparent {
            propagated = (parent, exchange.caller.trace?.tracestate)
        } else {
            return message
        }
        headers.append(("traceparent", propagated.traceparent))
        if let state = propagated.tracestate { headers.append(("tracestate", state)) }
        guard server.info?.version.isStateless == true || message.params?["_meta"]?["traceparent"] != nil else { return message }
        var traced = message
        var params = traced.params ?? [:]
        var meta = params["_meta"]?.objectValue ?? [:]
        meta["traceparent"] = .string(propagated.traceparent)
        meta["tracestate"] = propagated.tracestate.map { .string($0) }
        params["_meta"] = .object(meta)
        traced.params = params
        return traced
    }
}
