import GatehouseUpstream
import HTTPTypes
import Hummingbird
import Logging
import MCPWire
import NIOCore

/// Writing a request's answer: the request path's outcome as JSON, as an SSE stream, or
/// collected into a batch's answers, always in the client's revision.
extension MCPEndpoint {
    /// Runs a request through the request path and answers it over HTTP.
    func respond(_ exchange: Exchange) async -> Response {
        let session = exchange.session
        session?.beginRequest()
        let outcome: Outcome
        do {
            outcome = try await requestPipeline.run(exchange)
        } catch {
            session?.endRequest()
            error.log(logger)
            return errorResponse(error, exchange: exchange)
        }
        switch outcome {
        case .answer(let answer):
            session?.endRequest()
            return Self.withHeaders(finalJSON(answer, exchange: exchange), exchange.record.current.responseHeaders)
        case .stream(let stream):
            stream.onEnd { _ in session?.endRequest() }
            guard exchange.accepts.sse else {
                // The client takes JSON only: drop what comes before the answer.
                return Self.withHeaders(finalJSON(await drain(stream, exchange: exchange, reason: "the client accepts no event stream"), exchange: exchange),
                                        exchange.record.current.responseHeaders)
            }
            return Self.withHeaders(sse(stream, exchange: exchange), exchange.record.current.responseHeaders)
        }
    }

    /// Runs a request of a batch and collects its answer.
    func collect(_ exchange: Exchange) async -> JSONRPCMessage {
        exchange.session?.beginRequest()
        defer { exchange.session?.endRequest() }
        do {
            switch try await requestPipeline.run(exchange) {
            case .answer(let answer): return bridged(answer, exchange: exchange)
            case .stream(let stream): return bridged(await drain(stream, exchange: exchange, reason: "requests inside a batch cannot be answered"), exchange: exchange)
            }
        } catch {
            error.log(logger)
            return error.answer(id: exchange.id)
        }
    }

    /// Reads a stream to its answer, refusing the server's requests (the client cannot get them).
    private func drain(_ stream: AnswerStream, exchange: Exchange, reason: String) async -> JSONRPCMessage {
        do {
            while let item = try await stream.next() {
                switch item {
                case .answer(let answer): return answer
                case .message(let message, _) where message.kind == .request: await refuse(message, on: stream.channel, reason: reason)
                case .message: continue
                }
            }
            return GatewayError.upstream(UpstreamError(upstream: stream.upstreamName, kind: .protocolViolation, detail: "no answer")).answer(id: exchange.id)
        } catch {
            error.log(logger)
            return error.answer(id: exchange.id)
        }
    }

    /// The stream as SSE, written as events arrive: the server's notifications (mapped and
    /// redacted) and requests (to session clients), then the answer.
    private func sse(_ stream: AnswerStream, exchange: Exchange) -> Response {
        let logger = self.logger
        return HTTPResponses.sse { [self] writer in
            do {
                while let item = try await stream.next() {
                    switch item {
                    case .message(let message, let relayed):
                        if message.kind == .request, exchange.clientVersion.isStateless {
                            await refuse(message, on: stream.channel, reason: "2026-07-28 clients receive input requests via input_required results, which Gatehouse does not bridge yet")
                        } else if let relayed {
                            try await writer.writeSSE(relayed)
                        } else if message.kind == .request {
                            await refuse(message, on: stream.channel, reason: "a list request carries no input requests")
                        }
                    case .answer(let answer):
                        try await writer.writeSSE(bridged(answer, exchange: exchange))
                        try await writer.finish(nil)
                        return
                    }
                }
                try await writer.writeSSE(GatewayError.upstream(UpstreamError(upstream: stream.upstreamName, kind: .protocolViolation, detail: "no answer")).answer(id: exchange.id))
            } catch let error as GatewayError {
                error.log(logger)
                try await writer.writeSSE(error.answer(id: exchange.id))
            } catch {
                // The client went away: dropping the stream cancels the upstream request.
                logger.debug("stream ended early", metadata: ["error": "\(error)"])
                throw error
            }
            try await writer.finish(nil)
        }
    }

    func refuse(_ request: JSONRPCMessage, on channel: any UpstreamChannel, reason: String) async {
        guard let id = request.id else { return }
        logger.notice("refusing a server-to-client request", metadata: ["method": "\(request.method ?? "")", "reason": "\(reason)"])
        try? await channel.send(response: .error(id: id, code: JSONRPCErrorCode.methodNotFound, message: "cannot relay \(request.method ?? "request"): \(reason)"))
    }

    /// An answer in the client's revision.
    func bridged(_ answer: JSONRPCMessage, exchange: Exchange) -> JSONRPCMessage {
        // The server's name is read only for the one error that names it.
        VersionBridge.prepareResponse(answer, client: exchange.clientVersion, method: exchange.typed.method,
                                      upstreamName: exchange.record.current.serverIndex.map { self.servers[$0].config.name } ?? self.endpoint.path)
    }

    /// A final JSON answer; for 2026-07-28 clients an unknown method is HTTP 404 with -32601.
    func finalJSON(_ answer: JSONRPCMessage, exchange: Exchange) -> Response {
        let translated = bridged(answer, exchange: exchange)
        if exchange.clientVersion.isStateless, translated.error?["code"]?.intValue == JSONRPCErrorCode.methodNotFound {
            return HTTPResponses.json(translated, status: .notFound)
        }
        return HTTPResponses.json(translated)
    }

    private func errorResponse(_ error: GatewayError, exchange: Exchange) -> Response {
        if exchange.clientVersion.isStateless, error.code == JSONRPCErrorCode.methodNotFound {
            return HTTPResponses.json(error.answer(id: exchange.id), status: .notFound)
        }
        return error.response(id: exchange.id)
    }

    /// Adds the decision's response headers (`X-...` only).
    static func withHeaders(_ response: Response, _ headers: [(String, String)]) -> Response {
        guard !headers.isEmpty else { return response }
        var response = response
        for (name, value) in headers {
            if let field = HTTPField.Name(name) { response.headers[field] = value }
        }
        return response
    }
}
