import Foundation
import GatehouseConfig
import Logging
import MCPWire
import Synchronization

/// The decision log: one JSON line per decision, appended to stdout or a file. A file is opened
/// with O_APPEND and reopened when it was rotated away (checked at most once a second), so
/// `logrotate`'s move-and-create loses no line.
final class AuditLog: Sendable {
    let sink: PolicyConfig.Audit.Sink
    let mask: Set<String>
    let logger: Logger

    struct FileState {
        var fd: Int32 = -1
        var inode: UInt64 = 0
        var checkedAt = Date.distantPast
    }

    let file = Mutex(FileState())

    init(config: PolicyConfig.Audit, logger: Logger) {
        self.sink = config.sink
        self.mask = Set(config.maskArguments.map { $0.lowercased() })
        self.logger = logger
    }

    deinit {
        file.withLock { if $0.fd >= 0 { close($0.fd) } }
    }

    struct Entry {
        var endpoint: String
        var identity: GatehouseAuthIdentitySummary
        var method: String
        var server: String?
        var target: String?
        var requestID: JSONValue?
        var arguments: JSONValue?
        var clientIP: String?
        var decision: String
        var reasons: [String]
        var stage: String
        var policyVersion: String?
        var evaluationMicros: Int
        var redactions: Int = 0
        var hidden: Int?
    }

    func record(_ entry: Entry) {
        if case .off = sink { return }
        var object: JSONObject = [
            "time": .string(Timestamp.rfc3339(Date())),
            "kind": "decision",
            "stage": .string(entry.stage),
            "endpoint": .string(entry.endpoint),
            "identity": .object(entry.identity.json),
            "method": .string(entry.method),
            "decision": .string(entry.decision),
            "reasons": .array(entry.reasons.map(JSONValue.string)),
            "evaluation_us": .int(entry.evaluationMicros),
        ]
        if let server = entry.server { object["server"] = .string(server) }
        if let target = entry.target { object["target"] = .string(target) }
        if let id = entry.requestID { object["request_id"] = id }
        if let arguments = entry.arguments { object["arguments"] = masked(arguments) }
        if let ip = entry.clientIP { object["client_ip"] = .string(ip) }
        if let version = entry.policyVersion { object["policy_version"] = .string(version) }
        if entry.redactions > 0 { object["redactions"] = .int(entry.redactions) }
        if let hidden = entry.hidden { object["hidden_items"] = .int(hidden) }
        var line = JSONWriter.bytes(.object(object))
        line.append(UInt8(ascii: "\n"))
        write(line)
    }

    func masked(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let object):
            var out = JSONObject()
            for (key, item) in object { out[key] = mask.contains(key.lowercased()) ? "***" : masked(item) }
            return .object(out)
        case .array(let items):
            return .array(items.map(masked))
        default:
            return value
        }
    }

    private func write(_ line: [UInt8]) {
        switch sink {
        case .off:
            return
        case .stdout:
            file.withLock { _ in _ = line.withUnsafeBytes { Glibc.write(1, $0.baseAddress, $0.count) } }
        case .file(let path):
            file.withLock { state in
                let now = Date()
                if state.fd < 0 || now.timeIntervalSince(state.checkedAt) >= 1 {
                    state.checkedAt = now
                    var st = stat()
                    let rotated = stat(path, &st) != 0 || UInt64(st.st_ino) != state.inode
                    if state.fd < 0 || rotated {
                        if state.fd >= 0 { close(state.fd) }
                        state.fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o600)  // like the store: the log names callers
                        var opened = stat()
                        if state.fd >= 0, fstat(state.fd, &opened) == 0 { state.inode = UInt64(opened.st_ino) }
                        if state.fd < 0 { logger.error("cannot open the decision log", metadata: ["path": "\(path)", "errno": "\(errno)"]) }
                    }
                }
                guard state.fd >= 0 else { return }
                _ = line.withUnsafeBytes { Glibc.write(state.fd, $0.baseAddress, $0.count) }
            }
        }
    }
}

/// Who, in the decision log (never a token).
struct GatehouseAuthIdentitySummary {
    var kind: String
    var subject: String
    var issuer: String?
    var clientID: String?

    var json: JSONObject {
        var object: JSONObject = ["kind": .string(kind), "subject": .string(subject)]
        if let issuer { object["issuer"] = .string(issuer) }
        if let clientID { object["client_id"] = .string(clientID) }
        return object
    }
}

/// RFC 3339 UTC timestamps with milliseconds (`2026-11-22T05:27:37.303Z`), formatted by hand:
/// on every decision, and Foundation's ISO8601DateFormatter costs tens of microseconds on Linux.
enum Timestamp {
    static func rfc3339(_ date: Date) -> String {
        let totalMillis = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var seconds = time_t(totalMillis / 1000)
        let millis = Int(totalMillis % 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }

    /// `value` in decimal, zero-padded on the left to `width` digits.
    static func pad(_ value: Int32, _ width: Int) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
}
