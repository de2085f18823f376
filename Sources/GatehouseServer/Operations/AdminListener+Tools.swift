import Foundation
import GatehouseAuth
import GatehouseConfig
import HTTPTypes
import Hummingbird
import MCPWire
import NIOCore

/// The tool pinning routes of the admin listener (docs/security.md "Tool pinning").
extension AdminListener {
    /// Largest approval body read (it holds a digest and a name).
    static let maxDecisionBody = 16 * 1024

    static func addToolRoutes(to router: Router<BasicRequestContext>, state: GatewayState, pins: ToolPins?) {
        router.get("/tools") { _, _ in
            guard let pins else { return noPins() }
            do {
                let records = try await pins.store.toolVersions()
                let servers = state.snapshot.config.servers
                let tools = ToolPinReport.tools(records, servers: servers)
                return json(["tools": .array(tools.map(ToolPinReport.json)), "unpinnable": .array(pins.unpinnable(servers))])
            } catch {
                return storeFailed(error, pins: pins)
            }
        }
        router.get("/tools/:server/:tool/diff") { _, context in
            guard let pins else { return noPins() }
            let (server, tool) = names(context)
            do {
                guard let found = try await report(server: server, tool: tool, pins: pins, state: state) else { return unknownTool(server, tool) }
                return json(ToolPinReport.diff(found))
            } catch {
                return storeFailed(error, pins: pins)
            }
        }
        for approve in [true, false] {
            router.post("/tools/:server/:tool/\(approve ? "approve" : "reject")") { request, context in
                guard let pins else { return noPins() }
                let (server, tool) = names(context)
                guard state.snapshot.config.server(named: server)?.toolPinning.mode ?? .off != .off else { return unknownTool(server, tool) }
                let body = try? await request.body.collect(upTo: maxDecisionBody)
                let parsed = body.flatMap { try? JSONParser.parse(Array(buffer: $0)) }
                guard let digest = parsed?["digest"]?.stringValue, digest.hasPrefix("sha256:") else {
                    return json(["error": .string("send {\"digest\": \"sha256:…\"}: the digest of the definition you reviewed (GET /tools/\(server)/\(tool)/diff shows it)")],
                                status: .badRequest)
                }
                let by = String((parsed?["by"]?.stringValue ?? "admin API").prefix(200))
                do {
                    switch try await pins.decide(server: server, tool: tool, digest: digest, approve: approve, by: by) {
                    case .decided(let record):
                        return json(["server": .string(server), "tool": .string(tool), "digest": .string(record.digest), "state": .string(record.state.rawValue),
                                     "by": .string(by)])
                    case .unknown:
                        return json(["error": .string("no definition of tool '\(tool)' on server '\(server)' has digest \(digest)")], status: .notFound)
                    case .stale(let current):
                        return json(["error": .string("the tool's definition changed again since \(digest); review GET /tools/\(server)/\(tool)/diff and decide on \(current)"),
                                     "current": .string(current)], status: .conflict)
                    }
                } catch {
                    return storeFailed(error, pins: pins)
                }
            }
        }
    }

    static func names(_ context: BasicRequestContext) -> (server: String, tool: String) {
        let server = context.parameters.get("server") ?? ""
        let tool = context.parameters.get("tool") ?? ""
        return (server.removingPercentEncoding ?? server, tool.removingPercentEncoding ?? tool)
    }

    static func report(server: String, tool: String, pins: ToolPins, state: GatewayState) async throws -> ToolPinReport.Tool? {
        guard let config = state.snapshot.config.server(named: server), config.toolPinning.mode != .off else { return nil }
        return ToolPinReport.tool(tool, records: try await pins.store.toolVersions(server: server), server: config)
    }

    static func noPins() -> Response {
        json(["error": "no server pins its tools: set spec.toolPinning on an MCPServer (docs/security.md)"], status: .notFound)
    }

    static func unknownTool(_ server: String, _ tool: String) -> Response {
        json(["error": .string("no pinned tool '\(tool)' on server '\(server)'; GET /tools lists them")], status: .notFound)
    }

    static func storeFailed(_ error: any Error, pins: ToolPins) -> Response {
        pins.logger.error("tool pin store failure", metadata: ["error": "\(error)"])
        return json(["error": "the store could not be read or written; see the gateway log"], status: .serviceUnavailable)
    }
}
