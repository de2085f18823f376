import Foundation
import GatehouseConfig
import GatehouseUpstream
import Logging
import MCPWire
import ServiceLifecycle
import Synchronization
import UnixSignals

/// Reloads the whole config without dropping a request: on SIGHUP, on `POST /reload`, and when
/// the config file or one of its policy files changes (polled every second).
///
/// A reload loads and validates the file, compiles its policy and builds a complete new
/// snapshot before anything changes; any problem refuses it (logged with its diagnostics) and
/// the running snapshot keeps serving. Otherwise the snapshot is swapped in one step. Requests in
/// flight keep the snapshot they started with; upstream servers and endpoints that did not
/// change are carried over with their connections and sessions; what was replaced is stopped
/// after the shutdown grace period, once the requests that still use it have had time to end.
final class ConfigReloader: Service, Sendable {
    let source: ConfigSource?
    let watch: Bool
    let state: GatewayState
    let shared: GatewayShared
    /// New upstream servers go to the service that runs them.
    let starter: AsyncStream<UpstreamServer>.Continuation
    /// Stops what a reload replaced, after the grace period.
    private let retirements: AsyncStream<GatewaySnapshot.Built>.Continuation
    private let retirementStream: AsyncStream<GatewaySnapshot.Built>
    private let serial = ReloadGate()
    /// The version of the last refused file, so a bad file is reported once, not every second.
    private let refusedVersion = Mutex<String?>(nil)

    /// The listener's certificate, read again when its files change (every 5 s).
    let certificates: TLSCertificates?

    init(source: ConfigSource?, watch: Bool, state: GatewayState, shared: GatewayShared, starter: AsyncStream<UpstreamServer>.Continuation,
         certificates: TLSCertificates? = nil)
    {
        self.certificates = certificates
        self.source = source
        self.watch = watch
        self.state = state
        self.shared = shared
        self.starter = starter
        (retirementStream, retirements) = AsyncStream.makeStream()
    }

    enum Outcome: Sendable {
        case reloaded(version: String, generation: Int)
        case unchanged(version: String, generation: Int)
        case refused(String)
    }

    /// Reloads now. Reloads never overlap: a second caller waits for the first.
    func reload(trigger: String) async -> Outcome {
        await serial.enter()
        defer { serial.leave() }
        let outcome = await reloadNow(trigger: trigger)
        switch outcome {
        case .reloaded: shared.metrics.increment("gatehouse_config_reloads_total", ["success"])
        case .unchanged: shared.metrics.increment("gatehouse_config_reloads_total", ["unchanged"])
        case .refused: shared.metrics.increment("gatehouse_config_reloads_total", ["refused"])
        }
        return outcome
    }

    /// How long a reload waits for its new upstream servers' handshakes before it swaps the
    /// snapshot in anyway (a server that is down must not block every other config change).
    static let readinessWait: Duration = .seconds(10)

    /// Waits until every server is ready, or `readinessWait` has passed. Returns those not ready.
    private func waitUntilReady(_ servers: [UpstreamServer]) async -> [UpstreamServer] {
        let deadline = ContinuousClock.now + Self.readinessWait
        var pending = servers.filter { !$0.isReady }
        while !pending.isEmpty, ContinuousClock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(10))
            pending.removeAll { $0.isReady }
        }
        return pending
    }

    private func reloadNow(trigger: String) async -> Outcome {
        let current = state.snapshot
        guard let source else { return .refused("the gateway was started without a config file, so there is nothing to reload") }
        let config: GatewayConfig
        do {
            config = try source.load()
        } catch {
            return refuse("\(error)", version: source.version(of: nil), current: current, trigger: trigger)
        }
        let version = source.version(of: config)
        if version == current.version, config == current.config {
            return .unchanged(version: current.version, generation: current.generation)
        }
        let restart = GatewaySnapshot.restartNeeded(from: current.config, to: config)
        if !restart.isEmpty {
            return refuse("\(restart.joined(separator: ", ")) changed: restart gatehouse to apply (a reload cannot change them)", version: version,
                          current: current, trigger: trigger)
        }
        let built: GatewaySnapshot.Built
        do {
            built = try GatewaySnapshot.build(config: config, version: version, generation: current.generation + 1, previous: current, shared: shared)
        } catch {
            return refuse("\(error)", version: version, current: current, trigger: trigger)
        }
        // New servers start, and finish their handshake, before the snapshot that routes to
        // them is swapped in: until then the running snapshot serves (without this, a reload
        // that changed a server failed requests with upstream_not_ready for a moment).
        for upstream in built.started { starter.yield(upstream) }
        let notReady = await waitUntilReady(built.started)
        if !notReady.isEmpty {
            shared.logger.warning("reloading with servers that are not ready yet; their requests fail until they are", metadata: [
                "servers": "\(notReady.map(\.config.name).joined(separator: ","))", "waited": "\(Self.readinessWait)",
            ])
        }
        built.policyInstall?()
        _ = state.swap(built.snapshot)
        shared.pins?.useAuditLog(built.snapshot.policy?.audit)
        refusedVersion.withLock { $0 = nil }
        if !built.retired.isEmpty || !built.retiredEndpoints.isEmpty { retirements.yield(built) }
        shared.logger.info("config reloaded", metadata: [
            "version": "\(version)", "previous": "\(current.version)", "generation": "\(built.snapshot.generation)", "trigger": "\(trigger)",
            "servers_started": "\(built.started.map(\.config.name).joined(separator: ","))",
            "servers_retired": "\(built.retired.map(\.config.name).joined(separator: ","))",
        ])
        return .reloaded(version: version, generation: built.snapshot.generation)
    }

    private func refuse(_ problem: String, version: String, current: GatewaySnapshot, trigger: String) -> Outcome {
        refusedVersion.withLock { $0 = version }
        shared.logger.error("config reload refused; the running config keeps serving", metadata: [
            "trigger": "\(trigger)", "running_version": "\(current.version)", "problems": "\(problem)",
        ])
        return .refused(problem)
    }

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        await withDiscardingTaskGroup { group in
            group.addTask {
                for await _ in signals {
                    self.shared.logger.info("SIGHUP: reloading the config")
                    _ = await self.reload(trigger: "SIGHUP")
                }
            }
            if watch, let source {
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        let snapshot = self.state.snapshot
                        let onDisk = source.version(of: snapshot.config)
                        guard onDisk != snapshot.version, onDisk != self.refusedVersion.withLock({ $0 }) else { continue }
                        _ = await self.reload(trigger: "file change")
                    }
                }
            }
            if let certificates {
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(5))
                        if certificates.reloadIfChanged() { self.shared.logger.info("TLS certificate reloaded") }
                    }
                }
            }
            group.addTask {
                // What a reload replaced stops once its requests have had the grace period.
                await withDiscardingTaskGroup { retiring in
                    for await built in self.retirementStream {
                        retiring.addTask {
                            try? await Task.sleep(for: .seconds(max(1, self.state.snapshot.config.shutdown.gracePeriodSeconds)))
                            for endpoint in built.retiredEndpoints { await endpoint.shutdown() }
                            for upstream in built.retired { await upstream.shutdown() }
                        }
                    }
                }
            }
            try? await gracefulShutdown()
            retirements.finish()
            group.cancelAll()
        }
    }
}

/// Lets one reload run at a time; the others wait in line, in order, without polling.
final class ReloadGate: Sendable {
    private struct State {
        var busy = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func enter() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let runNow = state.withLock { state -> Bool in
                if state.busy {
                    state.waiters.append(continuation)
                    return false
                }
                state.busy = true
                return true
            }
            if runNow { continuation.resume() }
        }
    }

    func leave() {
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.waiters.isEmpty else {
                state.busy = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
    }
}
