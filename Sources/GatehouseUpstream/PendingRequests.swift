import Foundation
import MCPWire

/// Requests in flight on one multiplexed upstream connection, keyed by the id Gatehouse chose
/// for the upstream. Gatehouse always rewrites request ids on the way up, so ids of different
/// clients never collide upstream, and maps them back on the way down.
final class PendingRequests: @unchecked Sendable {
    struct Entry {
        var originalID: JSONValue
        var continuation: AsyncThrowingStream<UpstreamEvent, any Error>.Continuation
        /// Gatehouse's progress token upstream -> the client's token.
        var progressToken: (upstream: String, original: JSONValue)?
        var order: Int
    }

    private let lock = NSLock()
    private var nextID = 1
    private var entries: [Int: Entry] = [:]

    /// Allocates an upstream id and rewrites the request's id (and progress token) to it.
    func register(_ message: inout JSONRPCMessage, continuation: AsyncThrowingStream<UpstreamEvent, any Error>.Continuation, rewriteProgressToken: Bool) -> Int {
        lock.lock()
        defer { lock.unlock() }
        let id = nextID
        nextID += 1
        var entry = Entry(originalID: message.id ?? .null, continuation: continuation, progressToken: nil, order: id)
        message.id = .int(id)
        if rewriteProgressToken, let token = message.replaceProgressToken(with: .string("gh-\(id)")) {
            entry.progressToken = ("gh-\(id)", token)
        }
        entries[id] = entry
        return id
    }

    /// Removes and returns the entry for a response's id.
    func complete(upstreamID: JSONValue) -> Entry? {
        guard let id = upstreamID.intValue else { return nil }
        lock.lock()
        defer { lock.unlock() }
        return entries.removeValue(forKey: id)
    }

    func remove(_ id: Int) -> Entry? {
        lock.lock()
        defer { lock.unlock() }
        return entries.removeValue(forKey: id)
    }

    func entry(_ id: Int) -> Entry? {
        lock.lock()
        defer { lock.unlock() }
        return entries[id]
    }

    /// The entry that owns an upstream progress token, with the client's token.
    func entry(forProgressToken token: String) -> Entry? {
        lock.lock()
        defer { lock.unlock() }
        return entries.values.first { $0.progressToken?.upstream == token }
    }

    /// The most recently sent request still in flight.
    func newest() -> Entry? {
        lock.lock()
        defer { lock.unlock() }
        return entries.values.max { $0.order < $1.order }
    }

    /// Fails every request in flight (the connection died).
    func failAll(_ error: any Error) {
        lock.lock()
        let all = entries.values
        entries.removeAll()
        lock.unlock()
        for entry in all { entry.continuation.finish(throwing: error) }
    }

    /// Routes a response: restores the client's id and finishes the request's stream.
    func deliverResponse(_ message: JSONRPCMessage) -> Bool {
        guard let id = message.id, let entry = complete(upstreamID: id) else { return false }
        var copy = message
        copy.id = entry.originalID
        entry.continuation.yield(.response(copy))
        entry.continuation.finish()
        return true
    }

    /// Routes a progress notification by its (rewritten) token. Returns false if no request owns it.
    func deliverProgress(_ message: JSONRPCMessage) -> Bool {
        guard let token = message.params?[MetaKey.progressToken]?.stringValue, let entry = entry(forProgressToken: token),
            let original = entry.progressToken?.original
        else { return false }
        entry.continuation.yield(.message(message.withProgressToken(original)))
        return true
    }
}

extension JSONRPCMessage {
    /// Replaces the request's `_meta.progressToken`, returning the client's token (nil if none).
    mutating func replaceProgressToken(with token: JSONValue) -> JSONValue? {
        guard var params, var meta = params["_meta"]?.objectValue, let original = meta[MetaKey.progressToken] else { return nil }
        meta[MetaKey.progressToken] = token
        params["_meta"] = .object(meta)
        self.params = params
        return original
    }

    /// A progress notification carrying the given token.
    func withProgressToken(_ token: JSONValue) -> JSONRPCMessage {
        var copy = self
        var params = copy.params ?? JSONObject()
        params[MetaKey.progressToken] = token
        copy.params = params
        return copy
    }
}
