import Foundation
import GatehouseAuth
import GatehouseConfig
import GatehouseTools
import GatehouseUpstream
import Logging
import MCPWire
import ServiceLifecycle

extension ToolPins {
    // MARK: Listing on demand

    /// Lists the server's tools (every page, bounded) through `channels` and checks them; one
    /// listing per server at a time, which concurrent callers share.
    func refresh(server index: Int, federation: Federation, channels: ChannelSet) async {
        let config = federation.servers[index].config
        let task = refreshing.withLock { running -> Task<Void, Never> in
            if let task = running[config.name] { return task }
            let task = Task { [self] in
                defer { _ = refreshing.withLock { $0.removeValue(forKey: config.name) } }
                var items: [JSONValue] = []
                var cursor: String?
                for _ in 0..<20 {
                    let pages = await federation.fetchPages(.toolsList, positions: [(index, cursor)], channels: channels)
                    guard let result = pages.first?.result else { return }
                    items += result["tools"]?.arrayValue ?? []
                    cursor = result["nextCursor"]?.stringValue
                    if cursor?.isEmpty ?? true { break }
                }
                _ = await check(items, server: config, complete: cursor?.isEmpty ?? true)
            }
            running[config.name] = task
            return task
        }
        await task.value
    }

    // MARK: Replicas

    /// Reads what changed in the store since the last sync (decisions made by other replicas or
    /// the CLI) into the servers this process has loaded.
    func sync() async {
        let loaded = servers.withLock { Set($0.filter(\.value.loaded).keys) }
        guard !loaded.isEmpty else { return }
        let started = Self.nowMillis()
        // Overlap the window: rows written by a slower replica with an earlier clock still arrive.
        let since = syncedUntil.withLock { $0 } - 10_000
        do {
            let records = try await store.toolVersionsChanged(since: since)
            servers.withLock { all in
                for record in records where loaded.contains(record.server) && all[record.server] != nil {
                    Self.merge(record, into: &all[record.server]!)
                }
            }
            syncedUntil.withLock { $0 = started }
        } catch where !Task.isCancelled && !(error is CancellationError) {
            logger.warning("cannot read tool pin decisions from the store", metadata: ["error": "\(error)"])
        } catch {}  // shutting down
    }

    // MARK: Decisions

    /// Approves or rejects the tool's current definition, named by its digest.
    func decide(server: String, tool: String, digest: String, approve: Bool, by: String) async throws -> AuthStore.ToolDecisionOutcome {
        let outcome = try await store.decideToolVersion(server: server, tool: tool, digest: digest, approve: approve, by: by, now: Self.nowMillis())
        if case .decided(let record) = outcome {
            let others = (try? await store.toolVersions(server: server, tool: tool)) ?? [record]
            update(server) { state in
                for version in others { Self.merge(version, into: &state) }
            }
            metrics.increment("gatehouse_tool_decisions_total", [server, approve ? "approve" : "reject"])
            logger.notice(approve ? "tool definition approved" : "tool definition rejected",
                          metadata: ["server": "\(server)", "tool": "\(Printable.escaped(tool))", "digest": "\(digest)", "by": "\(Printable.escaped(by))"])
            audit(server: server, tool: tool, decision: approve ? "approve" : "reject", by: by, reasons: ["digest: \(digest)"])
        }
        return outcome
    }

    /// Tools of the servers' last lists that are too large to pin (held in enforce mode).
    func unpinnable(_ configs: [ServerConfig]) -> [JSONValue] {
        servers.withLock { all in
            configs.flatMap { config in
                (all[config.name]?.unpinnable ?? [:]).sorted { $0.key.text < $1.key.text }.map { name, bytes -> JSONValue in
                    ["server": .string(config.name), "tool": .string(name.text), "bytes": .int(bytes), "held": .bool(config.toolPinning.mode == .enforce),
                     "reason": .string("the definition (\(bytes) bytes) or its name is too large to pin: at most \(Self.maxDefinitionBytes) bytes and a \(Self.maxNameBytes)-byte name")]
                }
            }
        }
    }

    /// Tools held now, per server (a gauge).
    func heldCounts(_ configs: [ServerConfig]) -> [(server: String, held: Int)] {
        configs.filter { $0.toolPinning.mode == .enforce }.map { config in
            let held = servers.withLock { all -> Int in
                guard let state = all[config.name] else { return 0 }
                return state.current.filter { name, digest in
                    Self.verdict(name: name, digest: digest, state: state, pinning: config.toolPinning)?.visible != true
                }.count + state.unpinnable.count
            }
            return (config.name, held)
        }
    }
}

/// Keeps each replica's view of the pins current (`ToolPins.sync` every `syncInterval`).
struct ToolPinSync: Service {
    let pins: ToolPins

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: ToolPins.syncInterval)
                await pins.sync()
            }
        }
    }
}
