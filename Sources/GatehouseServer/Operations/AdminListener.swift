import Foundation
import GatehouseConfig
import GatehouseUpstream
import Hummingbird
import Logging
import MCPWire
import NIOCore
import ServiceLifecycle

/// The admin listener (`spec.admin.listen`, 127.0.0.1:9091 by default when enabled): separate
/// from the MCP listener so metrics and controls are never exposed where clients connect.
///
///   GET  /metrics        Prometheus text format
///   GET  /status         config name, policy version, upstream readiness (JSON)
///   POST /policy/reload  recompile the policy; 409 with the errors when it does not compile
enum AdminListener {
    static func application(config: GatewayConfig, listen: GatewayConfig.Listen, metrics: Metrics, policy: GatewayPolicy?,
                            upstreams: [UpstreamServer], reloader: PolicyReloader, logger: Logger) -> some Service
    {
        let router = Router()
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: metrics.render())))
        }
        router.get("/status") { _, _ in
            let servers = JSONObject(upstreams.map { (key: $0.config.name, value: JSONValue.string($0.isReady ? "ready" : "connecting")) })
            var status: JSONObject = ["gateway": .string(config.name), "servers": .object(servers)]
            if let version = policy?.engine?.version { status["policyVersion"] = .string(version) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: JSONWriter.bytes(.object(status)))))
        }
        router.post("/policy/reload") { _, _ in
            switch reloader.reload() {
            case .success(let version):
                return Response(status: .ok, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(bytes: JSONWriter.bytes(["policyVersion": .string(version)]))))
            case .failure(let error):
                return Response(status: .conflict, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(bytes: JSONWriter.bytes([
                                    "error": .string("\(error)"), "policyVersion": policy?.engine.map { .string($0.version) } ?? .null,
                                ]))))
            }
        }
        return Application(router: router, configuration: .init(address: .hostname(listen.bind, port: listen.port), serverName: "gatehouse-admin"),
                           onServerRunning: { channel in
                               logger.info("admin listening", metadata: ["url": "http://\(listen.bind):\(channel.localAddress?.port ?? listen.port)"])
                           }, logger: logger)
    }
}
