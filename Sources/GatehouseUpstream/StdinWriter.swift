import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Writes to a child process's stdin from a thread of its own, so a child that stops reading
/// can never block an event loop (a blocking `FileHandle.write` under a lock froze the gateway,
/// `/healthz` included, when a child stopped draining its input).
///
/// Messages are queued (bounded: `limit` bytes) and written in order by the writer thread.
/// When one write has not completed within `stallTimeout`, the child is declared stuck:
/// `onStall` runs once (the upstream kills the child, which fails its requests and restarts
/// it), and later sends fail at once.
///
/// `@unchecked Sendable`: every mutable field is read and written only with `condition` held.
final class StdinWriter: @unchecked Sendable {
    struct Refusal: Error, Sendable {
        enum Kind: Sendable { case closed, backedUp, stalled }
        var kind: Kind
    }

    private let condition = NSCondition()
    private var queue: [[UInt8]] = []
    private var queuedBytes = 0
    private var closed = false
    private var stalled = false
    /// Counts writes the thread has started, so a stall check knows whether the write it was
    /// scheduled for is still the current one.
    private var writeNumber = 0
    private var writing = false

    private let handle: FileHandle
    private let limit: Int
    private let stallTimeout: Double
    private let onStall: @Sendable () -> Void

    private static let ignoreSIGPIPE: Void = {
        // A child that exits closes the pipe; writing then must fail with EPIPE, not kill us.
        signal(SIGPIPE, SIG_IGN)
    }()

    init(handle: FileHandle, limit: Int, stallTimeout: Double, onStall: @escaping @Sendable () -> Void) {
        _ = Self.ignoreSIGPIPE
        self.handle = handle
        self.limit = limit
        self.stallTimeout = stallTimeout
        self.onStall = onStall
        let thread = Thread { [self] in run() }
        thread.name = "gatehouse-stdin"
        thread.start()
    }

    /// Queues bytes for the child; never blocks.
    func send(_ bytes: [UInt8]) throws(Refusal) {
        condition.lock()
        defer { condition.unlock() }
        if stalled { throw Refusal(kind: .stalled) }
        if closed { throw Refusal(kind: .closed) }
        if queuedBytes + bytes.count > limit, queuedBytes > 0 { throw Refusal(kind: .backedUp) }
        queue.append(bytes)
        queuedBytes += bytes.count
        condition.signal()
    }

    /// Stops the thread after what is queued has been written (or the pipe broke); closes the pipe.
    func close() {
        condition.lock()
        closed = true
        condition.signal()
        condition.unlock()
    }

    var isStalled: Bool {
        condition.lock()
        defer { condition.unlock() }
        return stalled
    }

    private func run() {
        while true {
            condition.lock()
            while queue.isEmpty, !closed { condition.wait() }
            if queue.isEmpty {
                condition.unlock()
                break
            }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            writeNumber += 1
            writing = true
            let number = writeNumber
            condition.unlock()

            scheduleStallCheck(number)
            var ok = true
            for bytes in batch where ok { ok = writeAll(bytes) }

            condition.lock()
            writing = false
            queuedBytes -= batch.reduce(0) { $0 + $1.count }
            if !ok {
                closed = true
                queue.removeAll()
                queuedBytes = 0
            }
            condition.unlock()
        }
        try? handle.close()
    }

    private func writeAll(_ bytes: [UInt8]) -> Bool {
        let fd = handle.fileDescriptor
        return bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
    }

    private func scheduleStallCheck(_ number: Int) {
        DispatchQueue.global().asyncAfter(deadline: .now() + stallTimeout) { [weak self] in
            guard let self else { return }
            self.condition.lock()
            let stuck = self.writing && self.writeNumber == number && !self.stalled
            if stuck { self.stalled = true }
            self.condition.unlock()
            if stuck { self.onStall() }
        }
    }
}
