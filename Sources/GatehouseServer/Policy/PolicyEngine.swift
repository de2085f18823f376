import Crypto
import Foundation
import GatehouseConfig
import GatehousePolicy
import Logging
import MCPWire
import Synchronization

/// What a policy decided about one request.
struct PolicyDecision: Sendable {
    var allow: Bool
    /// For the decision log.
    var reasons: [String] = []
    /// Shown to the client on denial (the policy's `message`); nil means a generic message.
    var message: String?
    var redact = Redaction()
    /// Headers added to the client's HTTP response.
    var responseHeaders: [(String, String)] = []
    /// Headers added to the upstream HTTP request (stdio servers have none).
    var upstreamHeaders: [(String, String)] = []
    /// True when the policy could not be evaluated (the request is denied, fail closed).
    var failed = false
    /// Other numbers for configured rate limits, by limit name (e.g. per tier).
    var rateLimits: [String: RateLimiter.Override] = [:]

    static func deny(_ reason: String, failed: Bool = false) -> PolicyDecision {
        PolicyDecision(allow: false, reasons: [reason], failed: failed)
    }

    struct Redaction: Sendable, Equatable {
        var detectors: Set<Redactor.Detector> = []
        var fields: Set<String> = []
        var isEmpty: Bool { detectors.isEmpty && fields.isEmpty }
    }
}

/// The compiled Rego policy of the gateway, swapped atomically on reload: a policy that does not
/// compile is refused and the previous one keeps deciding. Evaluation errors deny.
final class PolicyEngine: Sendable {
    struct Snapshot: Sendable {
        let policy: CompiledPolicy
        let version: String
        let path: [String]
    }

    let config: PolicyConfig
    let logger: Logger
    let current: Mutex<Snapshot>

    init(config: PolicyConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        self.current = Mutex(try Self.compile(config))
    }

    struct CompileError: Error, CustomStringConvertible {
        var description: String
    }

    /// Loads and compiles the policy files: every error, with file:line:column.
    static func compile(_ config: PolicyConfig) throws -> Snapshot {
        var bundle: PolicyBundle
        do {
            bundle = try PolicyLoader.load(paths: config.regoPaths)
        } catch {
            throw CompileError(description: "cannot load the policy: \(error)")
        }
        if let inline = config.inlineModule { bundle.modules.append(PolicyModule(name: "spec.policy.rego.inline", source: inline)) }
        guard !bundle.modules.isEmpty else { throw CompileError(description: "no .rego files in \(config.regoPaths.joined(separator: ", "))") }
        let policy: CompiledPolicy
        do {
            policy = try CompiledPolicy.compile(modules: bundle.modules, data: bundle.data)
        } catch {
            throw CompileError(description: "the policy does not compile:\n\(error)")
        }
        let path = config.query.split(separator: ".").dropFirst().map(String.init)
        guard !path.isEmpty else { throw CompileError(description: "spec.policy.rego.query must name a rule under data") }
        var hasher = SHA256()
        for module in bundle.modules.sorted(by: { $0.name < $1.name }) {
            hasher.update(data: Data(module.name.utf8))
            hasher.update(data: Data(module.source.utf8))
        }
        let version = hasher.finalize().prefix(6).map { String(format: "%02x", $0) }.joined()
        return Snapshot(policy: policy, version: version, path: path)
    }

    var version: String { current.withLock { $0.version } }

    /// Installs a policy compiled beforehand (a config reload compiles before it swaps).
    func install(_ snapshot: Snapshot) {
        let old = current.withLock { state -> String in
            defer { state = snapshot }
            return state.version
        }
        if old != snapshot.version { logger.info("policy reloaded", metadata: ["version": "\(snapshot.version)", "previous": "\(old)"]) }
    }

    /// Recompiles from disk; on failure the running policy stays.
    @discardableResult
    func reload() -> Result<String, any Error> {
        do {
            let snapshot = try Self.compile(config)
            let old = current.withLock { state -> String in
                let old = state.version
                state = snapshot
                return old
            }
            logger.info("policy reloaded", metadata: ["version": "\(snapshot.version)", "previous": "\(old)"])
            return .success(snapshot.version)
        } catch {
            logger.error("policy reload refused; the previous policy keeps deciding", metadata: ["error": "\(error)", "version": "\(version)"])
            return .failure(error)
        }
    }

    /// Evaluates the decision rule for one input. Undefined or malformed decisions deny.
    func decide(_ input: Value) -> (PolicyDecision, version: String) {
        let snapshot = current.withLock { $0 }
        let value: Value?
        do {
            value = try snapshot.policy.evalRule(snapshot.path, options: EvalOptions(input: input, strictBuiltinErrors: true))
        } catch {
            logger.error("policy evaluation failed; denying", metadata: ["error": "\(error)", "version": "\(snapshot.version)"])
            return (.deny("policy evaluation failed: \(error)", failed: true), snapshot.version)
        }
        return (Self.interpret(value), snapshot.version)
    }

    static func interpret(_ value: Value?) -> PolicyDecision {
        guard let value else { return .deny("the policy's decision is undefined (deny by default)") }
        if case .bool(let allow) = value { return PolicyDecision(allow: allow, reasons: allow ? [] : ["denied by policy"]) }
        guard case .object = value else { return .deny("the policy's decision is neither a boolean nor an object", failed: true) }
        guard case .bool(let allow)? = value["allow"] else { return .deny("the policy's decision has no boolean 'allow'", failed: true) }
        var decision = PolicyDecision(allow: allow)
        decision.reasons = strings(value["reasons"]) + strings(value["reason"])
        if !allow, decision.reasons.isEmpty { decision.reasons = ["denied by policy"] }
        decision.message = value["message"]?.stringValue
        if let redact = value["redact"] {
            decision.redact.detectors = Set(strings(redact["detectors"]).compactMap(Redactor.Detector.init(rawValue:)))
            decision.redact.fields = Set(strings(redact["fields"]).map { $0.lowercased() })
        }
        if let headers = value["headers"]?["response"]?.objectValue {
            for (key, v) in headers {
                if let name = key.stringValue, let text = v.stringValue, Self.isSafeHeader(name, text) { decision.responseHeaders.append((name, text)) }
            }
        }
        if let headers = value["headers"]?["upstream"]?.objectValue {
            for (key, v) in headers {
                if let name = key.stringValue, let text = v.stringValue, Self.isSafeHeader(name, text) { decision.upstreamHeaders.append((name, text)) }
            }
        }
        if case .object(let limits)? = value["rateLimits"] {
            for (key, v) in limits {
                guard let name = key.stringValue, case .number(let rps)? = v["requestsPerSecond"], rps.doubleValue > 0 else { continue }
                var burst = max(1, Int(rps.doubleValue.rounded(.up)))
                if case .number(let b)? = v["burst"], let value = b.intValue, value >= 1 { burst = value }
                decision.rateLimits[name] = RateLimiter.Override(requestsPerSecond: min(rps.doubleValue, 1_000_000), burst: min(burst, 1_000_000))
            }
        }
        decision.responseHeaders.sort { $0.0 < $1.0 }
        decision.upstreamHeaders.sort { $0.0 < $1.0 }
        return decision
    }

    static func strings(_ value: Value?) -> [String] {
        switch value {
        case .string(let s)?: [s]
        case .array(let a)?: a.compactMap(\.stringValue)
        case .set(let s)?: s.compactMap(\.stringValue).sorted()
        default: []
        }
    }

    /// Policies may add `X-...` headers only, without line breaks.
    static func isSafeHeader(_ name: String, _ value: String) -> Bool {
        name.lowercased().hasPrefix("x-") && name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" }
            && !value.contains(where: { $0 == "\r" || $0 == "\n" })
    }
}

extension Value {
    /// An object from string keys (keeps input building readable and quick to type-check).
    static func record(_ pairs: [(String, Value)]) -> Value {
        var object: [Value: Value] = [:]
        for (k, v) in pairs { object[.string(k)] = v }
        return .object(object)
    }

    static func strings(_ map: [String: String]) -> Value {
        var object: [Value: Value] = [:]
        for (k, v) in map { object[.string(k)] = .string(v) }
        return .object(object)
    }
}
