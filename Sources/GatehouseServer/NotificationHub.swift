import Foundation
import MCPWire

/// Fans change notifications out to the `subscriptions/listen` streams of 2026-07-28 clients.
final class NotificationHub: @unchecked Sendable {
    /// What a listener asked for (the `notifications` filter of `subscriptions/listen`).
    struct Filter: Sendable, Equatable {
        var toolsListChanged = false
        var promptsListChanged = false
        var resourcesListChanged = false
        var resourceSubscriptions: [String] = []

        init() {}

        init(_ object: JSONObject?) {
            toolsListChanged = object?["toolsListChanged"]?.boolValue ?? false
            promptsListChanged = object?["promptsListChanged"]?.boolValue ?? false
            resourcesListChanged = object?["resourcesListChanged"]?.boolValue ?? false
            resourceSubscriptions = object?["resourceSubscriptions"]?.arrayValue?.compactMap(\.stringValue) ?? []
        }

        /// The part of this filter an upstream with these capabilities can honour.
        func honoured(by capabilities: JSONObject) -> Filter {
            var result = Filter()
            result.toolsListChanged = toolsListChanged && capabilities["tools"]?["listChanged"]?.boolValue == true
            result.promptsListChanged = promptsListChanged && capabilities["prompts"]?["listChanged"]?.boolValue == true
            result.resourcesListChanged = resourcesListChanged && capabilities["resources"]?["listChanged"]?.boolValue == true
            if capabilities["resources"]?["subscribe"]?.boolValue == true { result.resourceSubscriptions = resourceSubscriptions }
            return result
        }

        var json: JSONObject {
            var object = JSONObject()
            if toolsListChanged { object["toolsListChanged"] = true }
            if promptsListChanged { object["promptsListChanged"] = true }
            if resourcesListChanged { object["resourcesListChanged"] = true }
            if !resourceSubscriptions.isEmpty { object["resourceSubscriptions"] = .array(resourceSubscriptions.map(JSONValue.string)) }
            return object
        }

        func matches(_ message: JSONRPCMessage) -> Bool {
            switch message.mcpMethod {
            case .toolsListChanged?: return toolsListChanged
            case .promptsListChanged?: return promptsListChanged
            case .resourcesListChanged?: return resourcesListChanged
            case .resourcesUpdated?:
                guard let uri = message.params?["uri"]?.stringValue else { return false }
                return resourceSubscriptions.contains(uri)
            default: return false
            }
        }
    }

    private struct Listener {
        var filter: Filter
        var subscriptionID: JSONValue
        var continuation: AsyncStream<[UInt8]>.Continuation
    }

    private let lock = NSLock()
    private var listeners: [Int: Listener] = [:]
    private var nextID = 0

    /// Open listen streams.
    var count: Int { lock.withLock { listeners.count } }

    /// Adds a listener; its stream carries ready SSE frames (notifications tagged with the
    /// subscription id, and keep-alive comments) and finishes on `closeAll`.
    func add(_ filter: Filter, subscriptionID: JSONValue, keepAlive: Duration) -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream(bufferingPolicy: .bufferingNewest(256))
        let id = lock.withLock { () -> Int in
            nextID += 1
            listeners[nextID] = Listener(filter: filter, subscriptionID: subscriptionID, continuation: continuation)
            return nextID
        }
        let ticker = KeepAlive.start(continuation, every: keepAlive)
        continuation.onTermination = { [weak self] _ in
            ticker.cancel()
            self?.remove(id)
        }
        return stream
    }

    func remove(_ id: Int) {
        _ = lock.withLock { listeners.removeValue(forKey: id) }
    }

    func publish(_ message: JSONRPCMessage) {
        let targets = lock.withLock { listeners.values.filter { $0.filter.matches(message) } }
        for target in targets {
            target.continuation.yield(SSEEncoder.message(Self.tag(message, subscriptionID: target.subscriptionID).bytes))
        }
    }

    /// Adds `_meta["io.modelcontextprotocol/subscriptionId"]` to a message on a listen stream.
    static func tag(_ message: JSONRPCMessage, subscriptionID: JSONValue) -> JSONRPCMessage {
        var copy = message
        let key = message.kind == .request || message.kind == .notification ? "params" : "result"
        var body = copy.object[key]?.objectValue ?? JSONObject()
        var meta = body["_meta"]?.objectValue ?? JSONObject()
        meta[MetaKey.subscriptionID] = subscriptionID
        body["_meta"] = .object(meta)
        copy.object[key] = .object(body)
        return copy
    }

    /// Ends every listen stream (shutdown).
    func closeAll() {
        let all = lock.withLock { () -> [Listener] in
            defer { listeners = [:] }
            return Array(listeners.values)
        }
        for listener in all { listener.continuation.finish() }
    }
}

/// Keep-alive comments on long-lived SSE streams, so idle connections are not cut by proxies
/// and a vanished client is noticed.
enum KeepAlive {
    static func start(_ continuation: AsyncStream<[UInt8]>.Continuation, every interval: Duration) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { return }
                if case .terminated = continuation.yield(SSEEncoder.keepAlive) { return }
            }
        }
    }
}
