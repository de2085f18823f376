import Foundation
import GatehouseConfig
import Logging
import MCPWire

#if canImport(Glibc)
    import Glibc
#endif

/// An upstream MCP server that Gatehouse runs as a child process and talks to over stdio.
///
/// Sharing (design note): one process per configured server, shared by every client. A stdio
/// server is built for exactly one client, so Gatehouse is that client: it runs the handshake
/// once and multiplexes every client's requests over the one pipe, rewriting request ids and
/// progress tokens so they never collide, and mapping answers back. The process runs with the
/// credentials in its config, not the caller's, so it holds no per-client state that sharing
/// could leak; a process per client would cost a process start (often 100+ ms, much memory)
/// per session. Server-to-client requests (roots, sampling, elicitation), which carry no
/// request link on stdio, go to the client whose request was sent most recently and is still
/// in flight; notifications that belong to no request are broadcast to every session.
public final class StdioUpstream: @unchecked Sendable {
    let name: String
    let stdio: ServerConfig.Stdio
    let timeouts: ServerConfig.Timeouts
    let logger: Logger

    private let lock = NSLock()
    private var process: Process?
    private var stdin: StdinWriter?
    private var pending = PendingRequests()
    private var info: UpstreamInfo?
    private var channels: [ObjectIdentifier: Weak] = [:]
    private var stopping = false
    private var restartDelay: Double
    private var generation = 0
    /// The generation whose exit was handled (an exit may be reported twice, see `stalled`).
    private var exitHandled = 0

    private struct Weak {
        weak var channel: StdioChannel?
    }

    public init(name: String, stdio: ServerConfig.Stdio, timeouts: ServerConfig.Timeouts, logger: Logger) {
        self.name = name
        self.stdio = stdio
        self.timeouts = timeouts
        self.logger = logger
        self.restartDelay = stdio.restartDelaySeconds
    }

    public var currentInfo: UpstreamInfo? { lock.withLock { info } }

    /// Starts the process and runs the handshake. On failure it keeps retrying with backoff
    /// in the background and throws the first error.
    public func start() async throws -> UpstreamInfo {
        do {
            return try await launch()
        } catch {
            scheduleRestart(reason: "\(error)")
            throw error
        }
    }

    private func launch() async throws -> UpstreamInfo {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try resolveCommand())
        process.arguments = stdio.args
        var environment: [String: String] = [:]
        let inherited = ProcessInfo.processInfo.environment
        for key in ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER", "TZ"] { environment[key] = inherited[key] }
        for entry in stdio.env { environment[entry.name] = entry.value.value }
        process.environment = environment
        if let dir = stdio.workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: dir) }
        let stdinPipe = Pipe(), stdoutPipe = Pipe(), stderrPipe = Pipe()
        process.standardInput = stdinPipe
        process.standardOutput = stdoutPipe
        process.standardError = stderrPipe

        let generation = lock.withLock { () -> Int in
            self.generation += 1
            self.pending = PendingRequests()
            return self.generation
        }
        let stdoutLines = LineSplitter()
        stdoutPipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                return
            }
            for line in stdoutLines.feed(data) { self?.received(line: line, generation: generation) }
        }
        let stderrLines = LineSplitter()
        let logger = self.logger
        let name = self.name
        stderrPipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                return
            }
            for line in stderrLines.feed(data) {
                logger.info("\(String(decoding: line, as: UTF8.self))", metadata: ["upstream": "\(name)", "stream": "stderr"])
            }
        }
        process.terminationHandler = { [weak self] process in
            self?.exited(status: process.terminationStatus, generation: generation)
        }
        do {
            try process.run()
        } catch {
            throw UpstreamError(upstream: name, kind: .unavailable, detail: "its command could not be started (the gateway log says why)",
                                operatorDetail: "cannot start '\(stdio.command)': \(error.localizedDescription)")
        }
        let writer = StdinWriter(handle: stdinPipe.fileHandleForWriting, limit: Self.stdinQueueLimit,
                                 stallTimeout: timeouts.requestSeconds) { [weak self] in self?.stalled(generation: generation) }
        lock.withLock {
            self.process = process
            self.stdin = writer
        }
        logger.info("started stdio upstream", metadata: ["upstream": "\(name)", "pid": "\(process.processIdentifier)"])

        // The handshake: Gatehouse is the one client of this process.
        let capabilities: JSONObject = ["roots": ["listChanged": true], "sampling": [:], "elicitation": [:]]
        let initialize = JSONRPCMessage.request(id: "initialize", method: "initialize", params: [
            "protocolVersion": .string(ProtocolVersion.latestSessionEra.rawValue),
            "capabilities": .object(capabilities),
            "clientInfo": .object(ClientDescription.gateway.clientInfo),
        ])
        var answer: JSONRPCMessage?
        for try await event in request(initialize, rewriteProgress: false) {
            if case .response(let message) = event { answer = message }
        }
        guard let answer, let result = answer.result?.objectValue else {
            let message = answer?.error?["message"]?.stringValue ?? "no answer"
            throw UpstreamError(upstream: name, kind: .unavailable, detail: "initialize failed: \(message)")
        }
        guard let version = result["protocolVersion"]?.stringValue.flatMap(ProtocolVersion.init) else {
            throw UpstreamError(upstream: name, kind: .protocolViolation, detail: "initialize answered an unknown protocol version")
        }
        try write(.notification(method: "notifications/initialized", params: nil))
        let info = UpstreamInfo(
            version: version, capabilities: result["capabilities"]?.objectValue ?? [:],
            serverInfo: result["serverInfo"]?.objectValue, instructions: result["instructions"]?.stringValue)
        lock.withLock {
            self.info = info
            self.restartDelay = stdio.restartDelaySeconds
        }
        return info
    }

    private func resolveCommand() throws -> String {
        if stdio.command.contains("/") {
            let base = stdio.workingDirectory.map { URL(fileURLWithPath: $0) }
            let url = stdio.command.hasPrefix("/") ? URL(fileURLWithPath: stdio.command) : URL(fileURLWithPath: stdio.command, relativeTo: base)
            guard FileManager.default.isExecutableFile(atPath: url.path) else {
                throw UpstreamError(upstream: name, kind: .unavailable, detail: "its command is not an executable file (the gateway log names it)",
                                    operatorDetail: "command '\(stdio.command)' is not an executable file")
            }
            return url.path
        }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let path = "\(dir)/\(stdio.command)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw UpstreamError(upstream: name, kind: .unavailable, detail: "its command was not found in PATH (the gateway log names it)",
                            operatorDetail: "command '\(stdio.command)' was not found in PATH")
    }

    // MARK: Traffic

    /// Sends a request over the pipe; its answer arrives through `received(line:)`.
    func request(_ message: JSONRPCMessage, rewriteProgress: Bool = true, onSent: ((Int) -> Void)? = nil) -> AsyncThrowingStream<UpstreamEvent, any Error> {
        let (stream, continuation) = AsyncThrowingStream<UpstreamEvent, any Error>.makeStream()
        var outgoing = message
        let pending = lock.withLock { self.pending }
        let id = pending.register(&outgoing, continuation: continuation, rewriteProgressToken: rewriteProgress)
        onSent?(id)
        let timeout = timeouts.requestSeconds
        let name = self.name
        let timer = Task { [weak self] in
            try? await Task.sleep(for: .seconds(timeout))
            guard !Task.isCancelled, let entry = pending.remove(id) else { return }
            entry.continuation.finish(throwing: UpstreamError(upstream: name, kind: .timeout, detail: "no answer within \(formatSeconds(timeout))"))
            self?.checkExited()
            try? self?.write(.notification(method: "notifications/cancelled", params: ["requestId": .int(id), "reason": "timed out in the gateway"]))
        }
        continuation.onTermination = { [weak self] termination in
            timer.cancel()
            guard case .cancelled = termination, pending.remove(id) != nil else { return }
            try? self?.write(.notification(method: "notifications/cancelled", params: ["requestId": .int(id), "reason": "the client cancelled the request"]))
        }
        do {
            try write(outgoing)
        } catch {
            _ = pending.remove(id)
            continuation.finish(throwing: error)
        }
        return stream
    }

    /// How much may wait for a child that reads slowly before new messages are refused.
    static let stdinQueueLimit = 16 << 20

    /// Queues a message for the child's stdin. Never blocks: the writer thread does the
    /// writing (see `StdinWriter`).
    func write(_ message: JSONRPCMessage) throws {
        var bytes = message.bytes
        bytes.append(0x0A)
        let writer = try lock.withLock { () throws -> StdinWriter in
            guard let stdin, process?.isRunning == true else {
                throw UpstreamError(upstream: name, kind: .unavailable, detail: stopping ? "it is shutting down" : "its process is not running (restarting)")
            }
            return stdin
        }
        do {
            try writer.send(bytes)
        } catch {
            switch error.kind {
            case .closed: throw UpstreamError(upstream: name, kind: .unavailable, detail: "writing to its stdin failed")
            case .backedUp: throw UpstreamError(upstream: name, kind: .unavailable, detail: "it is not reading its input (\(Self.stdinQueueLimit >> 20) MB waiting)")
            case .stalled: throw UpstreamError(upstream: name, kind: .unavailable, detail: "it stopped reading its input; restarting it")
            }
        }
    }

    /// A request timed out: if the child has in fact exited — Foundation reports an exit only
    /// once every copy of its pipes is closed, and a grandchild may hold them — handle the exit
    /// now, so it restarts instead of swallowing requests forever.
    private func checkExited() {
        let (process, generation) = lock.withLock { (self.process, self.generation) }
        guard let process, Self.isDefunct(process.processIdentifier) else { return }
        logger.error("stdio upstream exited while its pipes stayed open (a child process holds them)", metadata: ["upstream": "\(name)"])
        exited(status: -1, generation: generation)
    }

    /// Whether a process has exited and waits to be reaped (Linux: state Z in /proc/PID/stat).
    static func isDefunct(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    /// The child has not taken a write within the request timeout: it is stuck. Kill it; its
    /// exit fails every request in flight and schedules a restart.
    private func stalled(generation: Int) {
        let process = lock.withLock { generation == self.generation ? self.process : nil }
        guard let process, process.isRunning else { return }
        logger.error("stdio upstream stopped reading its input; killing it", metadata: ["upstream": "\(name)", "pid": "\(process.processIdentifier)"])
        kill(process.processIdentifier, SIGKILL)
        // Foundation reports the exit only once every copy of the child's pipes is closed; a
        // grandchild holding them would keep the upstream down forever. Treat it as exited.
        Task { [weak self] in
            try? await Task.sleep(for: .seconds(1))
            self?.exited(status: SIGKILL, generation: generation)
        }
    }

    private func received(line: [UInt8], generation: Int) {
        guard !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) else { return }
        let message: JSONRPCMessage
        do {
            message = try JSONRPCMessage(validating: try JSONParser.parse(line, maxDepth: 256))
        } catch {
            logger.warning("ignoring a line from the upstream that is not JSON-RPC", metadata: ["upstream": "\(name)", "error": "\(error)"])
            return
        }
        // A replaced process (or a grandchild that kept its stdout) must not answer the new
        // process's requests.
        guard let pending = lock.withLock({ generation == self.generation ? self.pending : nil }) else { return }
        switch message.kind {
        case .response, .errorResponse:
            if !pending.deliverResponse(message) {
                logger.debug("dropping an answer to a request no longer in flight", metadata: ["upstream": "\(name)"])
            }
        case .notification:
            if message.method == "notifications/progress", pending.deliverProgress(message) { return }
            if message.method == "notifications/cancelled" { return }
            broadcast(message)
        case .request:
            if message.method == "ping", let id = message.id {
                try? write(.response(id: id, result: .object([:])))
                return
            }
            if let entry = pending.newest() {
                entry.continuation.yield(.message(message))
            } else if !deliverToFirst(message), let id = message.id {
                try? write(.error(id: id, code: JSONRPCErrorCode.methodNotFound, message: "no client is connected to answer \(message.method ?? "this request")"))
            }
        }
    }

    private func liveChannels() -> [StdioChannel] {
        lock.withLock { channels.values.compactMap(\.channel) }
    }

    private func broadcast(_ message: JSONRPCMessage) {
        for channel in liveChannels() { channel.deliverUnsolicited(message) }
    }

    private func deliverToFirst(_ message: JSONRPCMessage) -> Bool {
        for channel in liveChannels() where channel.deliverUnsolicited(message) { return true }
        return false
    }

    private func exited(status: Int32, generation: Int) {
        let (pending, stopping) = lock.withLock { () -> (PendingRequests?, Bool) in
            guard generation == self.generation, exitHandled != generation else { return (nil, self.stopping) }
            exitHandled = generation
            self.process = nil
            self.stdin?.close()
            self.stdin = nil
            self.info = nil
            return (self.pending, self.stopping)
        }
        guard let pending else { return }
        pending.failAll(UpstreamError(upstream: name, kind: .unavailable, detail: "its process exited with status \(status)"))
        if stopping {
            logger.info("stdio upstream stopped", metadata: ["upstream": "\(name)"])
        } else {
            logger.error("stdio upstream exited", metadata: ["upstream": "\(name)", "status": "\(status)"])
            scheduleRestart(reason: "exit status \(status)")
        }
    }

    private func scheduleRestart(reason: String) {
        let delay = lock.withLock { () -> Double? in
            guard !stopping else { return nil }
            let delay = restartDelay
            restartDelay = min(restartDelay * 2, stdio.maxRestartDelaySeconds)
            return delay
        }
        guard let delay else { return }
        logger.info("restarting stdio upstream", metadata: ["upstream": "\(name)", "in": "\(delay)s", "reason": "\(reason)"])
        Task { [weak self] in
            try? await Task.sleep(for: .seconds(delay))
            guard let self, !self.lock.withLock({ self.stopping || self.process?.isRunning == true }) else { return }
            do {
                _ = try await self.launch()
                self.logger.info("stdio upstream restarted", metadata: ["upstream": "\(self.name)"])
            } catch {
                self.logger.error("stdio upstream restart failed", metadata: [
                    "upstream": "\(self.name)", "error": "\(error)", "operator_detail": "\((error as? UpstreamError)?.operatorDetail ?? "")",
                ])
                self.terminateCurrent()
                self.scheduleRestart(reason: "\(error)")
            }
        }
    }

    private func terminateCurrent() {
        let process = lock.withLock { () -> Process? in
            defer { self.process = nil; self.stdin?.close(); self.stdin = nil }
            return self.process
        }
        if let process, process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    /// Stops the process: closes stdin, then SIGTERM, then SIGKILL after two seconds.
    public func stop() async {
        let (process, stdin) = lock.withLock { () -> (Process?, StdinWriter?) in
            stopping = true
            return (self.process, self.stdin)
        }
        guard let process, process.isRunning else { return }
        stdin?.close()
        for _ in 0..<20 where process.isRunning { try? await Task.sleep(for: .milliseconds(25)) }
        if process.isRunning { process.terminate() }
        for _ in 0..<80 where process.isRunning { try? await Task.sleep(for: .milliseconds(25)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }

    // MARK: Channels

    public func openChannel() throws -> any UpstreamChannel {
        guard let info = currentInfo else {
            throw UpstreamError(upstream: name, kind: .unavailable, detail: "its process is not running (restarting)")
        }
        let channel = StdioChannel(upstream: self, info: info)
        lock.withLock { channels[ObjectIdentifier(channel)] = Weak(channel: channel) }
        return channel
    }

    func detach(_ channel: StdioChannel) {
        _ = lock.withLock { channels.removeValue(forKey: ObjectIdentifier(channel)) }
    }
}

/// One client's view of a shared stdio upstream.
final class StdioChannel: UpstreamChannel, @unchecked Sendable {
    let upstream: StdioUpstream
    let info: UpstreamInfo
    var upstreamSessionID: String? { nil }
    private let lock = NSLock()
    private var handler: (@Sendable (JSONRPCMessage) -> Void)?
    /// The client's request id -> Gatehouse's id upstream, for cancellation.
    private var inFlight: [String: Int] = [:]

    init(upstream: StdioUpstream, info: UpstreamInfo) {
        self.upstream = upstream
        self.info = info
    }

    func send(request: JSONRPCMessage, headers: [(String, String)]) -> UpstreamEvents {
        var message = request
        VersionBridge.prepareRequest(&message, upstream: info.version, client: .gateway)
        let key = request.id?.idKey ?? ""
        let inner = upstream.request(message) { [weak self] id in self?.lock.withLock { self?.inFlight[key] = id } }
        // Forget the id mapping when the request ends.
        let (stream, continuation) = AsyncThrowingStream<UpstreamEvent, any Error>.makeStream()
        let task = Task { [weak self] in
            do {
                for try await event in inner { continuation.yield(event) }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
            _ = self?.lock.withLock { self?.inFlight.removeValue(forKey: key) }
        }
        continuation.onTermination = { _ in task.cancel() }
        return UpstreamEvents(stream)
    }

    func send(notification: JSONRPCMessage) async throws {
        switch notification.method {
        case "notifications/initialized":
            return  // Gatehouse ran the handshake with the process itself.
        case "notifications/cancelled":
            guard let clientID = notification.params?["requestId"],
                let upstreamID = lock.withLock({ inFlight[clientID.idKey] })
            else { return }
            var params = notification.params ?? [:]
            params["requestId"] = .int(upstreamID)
            try upstream.write(.notification(method: "notifications/cancelled", params: params))
        default:
            try upstream.write(notification)
        }
    }

    func send(response: JSONRPCMessage) async throws {
        try upstream.write(response)
    }

    func setUnsolicitedHandler(_ handler: @escaping @Sendable (JSONRPCMessage) -> Void) {
        lock.withLock { self.handler = handler }
    }

    @discardableResult
    func deliverUnsolicited(_ message: JSONRPCMessage) -> Bool {
        guard let handler = lock.withLock({ self.handler }) else { return false }
        handler(message)
        return true
    }

    func close() async {
        upstream.detach(self)
    }
}

/// Splits a byte stream into newline-terminated lines (thread-safe).
final class LineSplitter: @unchecked Sendable {
    private let lock = NSLock()
    private var buffer: [UInt8] = []
    static let maxLine = 64 << 20

    func feed(_ data: Data) -> [[UInt8]] {
        lock.withLock {
            var lines: [[UInt8]] = []
            for byte in data {
                if byte == 0x0A {
                    lines.append(buffer)
                    buffer.removeAll(keepingCapacity: true)
                } else if buffer.count < Self.maxLine {
                    buffer.append(byte)
                }
            }
            return lines
        }
    }
}
