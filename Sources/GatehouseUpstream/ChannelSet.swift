import Foundation
import Synchronization
import MCPWire

/// One client's channels to the servers of an endpoint, opened lazily (a server that is down
/// when the session starts is connected on first use, not left out for the session's life).
public final class ChannelSet: Sendable {
    public let servers: [UpstreamServer]
    public let owner: ChannelOwner
    public let client: ClientDescription
    /// Called once per opened channel, with the server's index (to route unsolicited messages).
    private let onOpen: @Sendable (Int, any UpstreamChannel) -> Void

    private struct State {
        var channels: [Int: any UpstreamChannel] = [:]
        /// Channels being opened: later callers wait for the same task.
        var opening: [Int: Task<any UpstreamChannel, any Error>] = [:]
        var closed = false
    }

    private let state = Mutex(State())

    public init(servers: [UpstreamServer], owner: ChannelOwner, client: ClientDescription,
                onOpen: @escaping @Sendable (Int, any UpstreamChannel) -> Void)
    {
        self.servers = servers
        self.owner = owner
        self.client = client
        self.onOpen = onOpen
    }

    /// The channel to server `index`, opening it if needed.
    public func channel(_ index: Int) async throws -> any UpstreamChannel {
        enum Found {
            case open(any UpstreamChannel)
            case pending(Task<any UpstreamChannel, any Error>)
        }
        let found = state.withLock { state -> Found in
            if let channel = state.channels[index] { return .open(channel) }
            if let pending = state.opening[index] { return .pending(pending) }
            let server = servers[index]
            let (owner, client) = (self.owner, self.client)
            let task = Task { try await server.channel(for: owner, client: client) }
            state.opening[index] = task
            return .pending(task)
        }
        let task: Task<any UpstreamChannel, any Error>
        switch found {
        case .open(let channel): return channel
        case .pending(let pending): task = pending
        }
        do {
            let channel = try await task.value
            enum Placed {
                case fresh(any UpstreamChannel)
                case existing(any UpstreamChannel)
                case closed
            }
            let placed = state.withLock { state -> Placed in
                state.opening[index] = nil
                if state.closed { return .closed }
                if let existing = state.channels[index] { return .existing(existing) }
                state.channels[index] = channel
                return .fresh(channel)
            }
            switch placed {
            case .closed:
                await channel.close()
                throw UpstreamError(upstream: servers[index].config.name, kind: .unavailable, detail: "the session was closed")
            case .existing(let existing):
                return existing
            case .fresh(let channel):
                onOpen(index, channel)
                return channel
            }
        } catch {
            state.withLock { _ = $0.opening.removeValue(forKey: index) }
            throw error
        }
    }

    /// Installs an already-open channel (a session restored from a sealed id).
    public func adopt(_ channel: any UpstreamChannel, at index: Int) {
        let fresh = state.withLock { state -> Bool in
            guard state.channels[index] == nil else { return false }
            state.channels[index] = channel
            return true
        }
        if fresh { onOpen(index, channel) }
    }

    /// Channels open right now, by server index.
    public var open: [Int: any UpstreamChannel] { state.withLock { $0.channels } }

    /// Forgets a channel whose upstream session ended, so the next use opens a new one.
    public func discard(_ channel: any UpstreamChannel, at index: Int) {
        state.withLock { state in
            if let current = state.channels[index], current === channel { state.channels[index] = nil }
        }
    }

    public func close() async {
        let all = state.withLock { state -> [any UpstreamChannel] in
            state.closed = true
            defer { state.channels = [:] }
            return Array(state.channels.values)
        }
        for channel in all { await channel.close() }
    }
}
