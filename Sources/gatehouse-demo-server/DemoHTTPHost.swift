// Streamable HTTP hosting: Hummingbird serves POST/GET/DELETE on the MCP endpoint and hands
// each request to the session's SDK transport (StatefulHTTPServerTransport, wrapped by
// RequestScopedHTTPTransport). An `initialize` POST without a session creates a session:
// its own transport and its own `Server`.
//
// Note: Hummingbird exports HTTPTypes' HTTPRequest/HTTPResponse, and MCP has types of the
// same names, so this file always qualifies the MCP ones.

import Foundation
import Hummingbird
import Logging
import MCP

struct DemoHTTPHost {
    let host: String
    let port: Int
    let path: String
    let logger: Logger

    /// Largest request body accepted on the MCP endpoint.
    static let maxBodyBytes = 8 * 1024 * 1024

    func run() async throws {
        let sessions = DemoSessionRegistry(
            validationPipeline: Self.validationPipeline(forHost: host), logger: logger)

        let router = Router()
        let endpoint = RouterPath(path)
        let handler: @Sendable (Request, BasicRequestContext) async throws -> Response = {
            request, _ in
            let mcpRequest = try await Self.mcpRequest(from: request)
            let mcpResponse = await sessions.handle(mcpRequest)
            return Self.response(from: mcpResponse)
        }
        // POST, GET and DELETE are MCP's; the others get the SDK's 405 with an Allow header.
        router.on(endpoint, method: .post, use: handler)
        router.on(endpoint, method: .get, use: handler)
        router.on(endpoint, method: .delete, use: handler)
        router.on(endpoint, method: .put, use: handler)
        router.on(endpoint, method: .patch, use: handler)

        // Hummingbird's own request logging is noise here unless asked for.
        var appLogger = Logger(label: "gatehouse-demo-server.http")
        appLogger.logLevel = logger.logLevel > .debug ? .warning : logger.logLevel

        let displayHost = host.contains(":") ? "[\(host)]" : host
        let path = self.path
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port)),
            onServerRunning: { channel in
                let boundPort = channel.localAddress?.port ?? 0
                writeStderrLine("listening on http://\(displayHost):\(boundPort)\(path)")
            },
            logger: appLogger
        )
        // run() (not runService()) installs no signal handlers: SIGINT/SIGTERM end the
        // process at once, which is what a demo server with long-lived SSE streams wants.
        try await app.run()
    }

    /// DNS-rebinding protection (Host/Origin checks) when bound to loopback; none otherwise,
    /// since the server cannot know which names it is reached by.
    static func validationPipeline(forHost host: String) -> any HTTPRequestValidationPipeline {
        let loopback = ["127.0.0.1", "localhost", "::1"].contains(host.lowercased())
        return StandardValidationPipeline(validators: [
            loopback ? OriginValidator.localhost() : OriginValidator.disabled,
            AcceptHeaderValidator(mode: .sseRequired),
            ContentTypeValidator(),
            ProtocolVersionValidator(),
            SessionValidator(),
        ])
    }

    static func mcpRequest(from request: Request) async throws -> MCP.HTTPRequest {
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName
            if let existing = headers[name] {
                headers[name] = existing + ", " + field.value
            } else {
                headers[name] = field.value
            }
        }
        // HTTP/1.1's Host header lives in the request head's authority with HTTPTypes.
        if let authority = request.head.authority, headers["host"] == nil {
            headers["host"] = authority
        }
        var body: Data?
        if request.method == .post {
            let buffer = try await request.body.collect(upTo: maxBodyBytes)
            body = Data(buffer.readableBytesView)
        }
        return MCP.HTTPRequest(
            method: request.method.rawValue, headers: headers, body: body, path: request.uri.path)
    }

    static func response(from mcpResponse: MCP.HTTPResponse) -> Response {
        var fields = HTTPFields()
        for (name, value) in mcpResponse.headers {
            if let fieldName = HTTPFields.Element.Name(name) {
                fields[fieldName] = value
            }
        }
        let code = mcpResponse.statusCode
        switch mcpResponse {
        case .stream(let stream, _):
            return Response(
                status: .init(code: code), headers: fields,
                body: ResponseBody { writer in
                    do {
                        for try await chunk in stream {
                            try await writer.write(ByteBuffer(bytes: chunk))
                        }
                    } catch is CancellationError {
                        // Client went away.
                    } catch {
                        // The stream ended with an error: end the body.
                    }
                    try await writer.finish(nil)
                })
        default:
            if let data = mcpResponse.bodyData {
                return Response(
                    status: .init(code: code), headers: fields,
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
            }
            return Response(status: .init(code: code), headers: fields)
        }
    }
}

/// The HTTP sessions of one server process: session id → transport + MCP server.
actor DemoSessionRegistry {
    private struct Session {
        let transport: RequestScopedHTTPTransport
        let server: Server
    }

    private let validationPipeline: any HTTPRequestValidationPipeline
    private let logger: Logger
    private var sessions: [String: Session] = [:]

    init(validationPipeline: any HTTPRequestValidationPipeline, logger: Logger) {
        self.validationPipeline = validationPipeline
        self.logger = logger
    }

    func handle(_ request: MCP.HTTPRequest) async -> MCP.HTTPResponse {
        let method = request.method.uppercased()
        guard ["POST", "GET", "DELETE"].contains(method) else {
            return .error(
                statusCode: 405, .invalidRequest("Method Not Allowed"),
                extraHeaders: [HTTPHeaderName.allow: "GET, POST, DELETE"])
        }
        if method == "POST", let problem = Self.bodyProblem(request.body) {
            // Checked before session routing, so a bad body gets the same JSON-RPC error with
            // or without a session. (The SDK transport would call all of these parse errors.)
            let knownSession = request.header(HTTPHeaderName.sessionID).flatMap {
                sessions[$0] != nil ? $0 : nil
            }
            return .error(statusCode: 400, problem, sessionID: knownSession)
        }
        if let sessionID = request.header(HTTPHeaderName.sessionID),
            let session = sessions[sessionID]
        {
            let response = await session.transport.handleRequest(request)
            if method == "DELETE", response.statusCode == 200 {
                sessions.removeValue(forKey: sessionID)
                await session.server.stop()
                logger.info("session closed", metadata: ["session": "\(sessionID)"])
            }
            return response
        }

        if method == "POST", let body = request.body, Self.isInitializeRequest(body) {
            return await createSession(for: request)
        }
        if request.header(HTTPHeaderName.sessionID) != nil {
            return .error(statusCode: 404, .invalidRequest("Not Found: Session not found or expired"))
        }
        return .error(
            statusCode: 400,
            .invalidRequest("Bad Request: Missing \(HTTPHeaderName.sessionID) header"))
    }

    private func createSession(for request: MCP.HTTPRequest) async -> MCP.HTTPResponse {
        let sessionID = Self.newSessionID()
        let inner = StatefulHTTPServerTransport(
            sessionIDGenerator: FixedSessionID(id: sessionID),
            validationPipeline: validationPipeline,
            logger: logger
        )
        let transport = RequestScopedHTTPTransport(inner: inner, logger: logger)
        let state = DemoSessionState()
        let server = await makeDemoServer(state: state, logger: logger)
        do {
            try await server.start(transport: transport) { clientInfo, capabilities in
                await state.setClient(info: clientInfo, capabilities: capabilities)
            }
        } catch {
            await server.stop()
            return .error(
                statusCode: 500, .internalError("Failed to create session: \(error)"))
        }
        sessions[sessionID] = Session(transport: transport, server: server)

        let response = await transport.handleRequest(request)
        if case .error = response {
            sessions.removeValue(forKey: sessionID)
            await server.stop()
        } else {
            logger.info("session opened", metadata: ["session": "\(sessionID)"])
        }
        return response
    }

    /// What is wrong with a POST body, or nil if it is one JSON-RPC message: invalid JSON is
    /// a parse error (-32700); valid JSON that is not one JSON-RPC 2.0 message (including a
    /// batch, which the SDK's HTTP transport cannot route) is an invalid request (-32600).
    private static func bodyProblem(_ body: Data?) -> MCPError? {
        guard let body, !body.isEmpty else { return .parseError("Empty request body") }
        guard let json = try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])
        else { return .parseError("Invalid JSON") }
        if json is [Any] {
            return .invalidRequest("JSON-RPC batches are not supported")
        }
        guard let object = json as? [String: Any] else {
            return .invalidRequest("expected a JSON-RPC message object")
        }
        let isRequestOrNotification = object["method"] is String
        let isResponse = object["id"] != nil && (object["result"] != nil || object["error"] != nil)
        guard object["jsonrpc"] as? String == "2.0", isRequestOrNotification || isResponse else {
            return .invalidRequest("not a JSON-RPC 2.0 message")
        }
        return nil
    }

    /// 128 random bits as 32 lowercase hex digits (visible ASCII, as the spec requires).
    private static func newSessionID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let hex = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }

    private static func isInitializeRequest(_ body: Data) -> Bool {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            return false
        }
        return object["method"] as? String == "initialize" && object["id"] != nil
    }
}

private struct FixedSessionID: SessionIDGenerator {
    let id: String
    func generateSessionID() -> String { id }
}
