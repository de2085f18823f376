import AsyncHTTPClient
import Foundation
import GatehouseConfig
import Logging
import NIOCore
import ServiceLifecycle

/// Sends the tracer's spans to the OTLP/HTTP collector (`spec.tracing.otlp`) in JSON, batched,
/// off the request path. A collector that is down loses spans (counted), never requests.
struct TraceExporter: Service {
    let tracer: Tracer
    let tracing: GatewayConfig.Tracing
    let client: HTTPClient
    let logger: Logger

    func run() async throws {
        let url = tracing.otlpEndpoint + "/v1/traces"
        let headers = tracing.headers
        let client = client
        let logger = logger
        await cancelWhenGracefulShutdown {
            await tracer.run { body in
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                for header in headers { request.headers.add(name: header.name, value: header.value.value) }
                request.body = .bytes(ByteBuffer(bytes: body))
                let response = try await client.execute(request, timeout: .seconds(5))
                guard (200..<300).contains(response.status.code) else {
                    logger.debug("OTLP export refused", metadata: ["status": "\(response.status.code)"])
                    throw TraceExportError(status: Int(response.status.code))
                }
                _ = try? await response.body.collect(upTo: 64 * 1024)
            }
        }
    }

    struct TraceExportError: Error { var status: Int }
}

/// What the service group logs of it: the endpoint without credentials (its userinfo would
/// otherwise reach a debug log).
extension TraceExporter: CustomStringConvertible {
    var description: String { "TraceExporter(endpoint: \(DisplayURL.redacted(tracing.otlpEndpoint)))" }
}
