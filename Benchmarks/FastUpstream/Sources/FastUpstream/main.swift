// fast-upstream: the benchmark's MCP server. See Benchmarks/README.md.
//
//   fast-upstream [--host 127.0.0.1] [--port 9100] [--threads 1] [--no-discover]
//
// Answers POST /mcp: server/discover, tools/list, tools/call (echoes the arguments as text),
// ping, initialize (mints an Mcp-Session-Id), notifications (202). JSON answers by default,
// an SSE stream of one `message` event when the URL has `sse=1` or the request carries
// `X-Bench-SSE: 1`. Session ids are minted but not checked: the server keeps no state.
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

var options = Options()
var args = CommandLine.arguments.dropFirst()
func usage() -> Never {
    print("usage: fast-upstream [--host H] [--port N] [--threads N] [--no-discover]")
    exit(2)
}
while let arg = args.popFirst() {
    switch arg {
    case "--host": options.host = args.popFirst() ?? { usage() }()
    case "--port": options.port = Int(args.popFirst() ?? "") ?? { usage() }()
    case "--threads": options.threads = Int(args.popFirst() ?? "") ?? { usage() }()
    case "--no-discover": options.noDiscover = true
    default: usage()
    }
}

let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, options.threads))
let handlerOptions = options
let bootstrap = ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(MCPHandler(options: handlerOptions))
        }
    }

let channel = try bootstrap.bind(host: options.host, port: options.port).wait()
print("fast-upstream listening on http://\(options.host):\(channel.localAddress?.port ?? options.port)/mcp threads=\(options.threads)\(options.noDiscover ? " no-discover" : "")")
fflush(nil)  // all streams: `stdout` itself is not concurrency-safe to name in Swift 6
try channel.closeFuture.wait()
