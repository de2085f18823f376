import Foundation
import MCPWire

/// One client's channels to the servers of an endpoint, opened lazily (a server that is down
/// when the session starts is connected on first use, not left out for the session's life).
public final class ChannelSet: @unchecked Sendable {
    public let servers: [UpstreamServer]
    public let owner: ChannelOwner
    public let client: ClientDescription
    /// Called once per opened channel, with the server's index (to route unsolicited messages).
    private let onOpen: @Sendable (Int, any UpstreamChannel) -> Void
    private let lock = NSLock()
    private var channels: [Int: any UpstreamChannel] = [:]
    private var opening: [Int: Task<any UpstreamChannel, any Error>] = [:]
    private var closed = false

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
        let task = lock.withLock { () -> Task<any UpstreamChannel, any Error>? in
            if channels[index] != nil { return nil }
            if let pending = opening[index] { return pending }
            let server = servers[index]
            let (owner, client) = (self.owner, self.client)
            let task = Task { try await server.channel(for: owner, client: client) }
            opening[index] = task
            return task
        }
        guard let task else { return lock.withLock { channels[index]! } }
        do {
            let channel = try await task.value
            let (fresh, shouldClose) = lock.withLock { () -> (Bool, Bool) in
                opening[index] = nil
                if closed { return (false, true) }
                if channels[index] != nil { return (false, false) }
                channels[index] = channel
                return (true, false)
            }
            if shouldClose {
                await channel.close()
                throw UpstreamError(upstream: servers[index].config.name, kind: .unavailable, detail: "the session was closed")
            }
            if fresh { onOpen(index, channel) }
            return lock.withLock { channels[index]! }
        } catch {
            lock.withLock { opening[index] = nil }
            throw error
        }
    }

    /// Installs an already-open channel (a session restored from a sealed id).
    public func adopt(_ channel: any UpstreamChannel, at index: Int) {
        let fresh = lock.withLock { () -> Bool in
            guard channels[index] == nil else { return false }
            channels[index] = channel
            return true
        }
        if fresh { onOpen(index, channel) }
    }

    /// Channels open right now, by server index.
    public var open: [Int: any UpstreamChannel] { lock.withLock { channels } }

    /// Forgets a channel whose upstream session ended, so the next use opens a new one.
    public func discard(_ channel: any UpstreamChannel, at index: Int) {
        lock.withLock {
            if let current = channels[index], current === channel { channels[index] = nil }
        }
    }

    public func close() async {
        let all = lock.withLock { () -> [any UpstreamChannel] in
            closed = true
            defer { channels = [:] }
            return Array(channels.values)
        }
        for channel in all { await channel.close() }
    }
}
