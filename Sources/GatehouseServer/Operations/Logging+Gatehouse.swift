import Foundation
import Logging
import MCPWire
import Synchronization

/// The id of the request a log line belongs to: taken from a sane `X-Request-Id` or generated,
/// echoed in the response, and added to every log line written while the request is handled
/// (a task-local read by the logging metadata provider, so no logger is passed around).
public enum RequestID {
    @TaskLocal public static var current: String?

    /// The client's id if it is short and plain (letters, digits, `.`, `_`, `-`), else a new one.
    static func accept(_ header: String?) -> String {
        if let header, (1...64).contains(header.utf8.count),
            header.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D })
        {
            return header
        }
        // Unique, not secret: a random start (read once) and a counter, mixed so consecutive
        // ids do not look alike. No system call per request.
        let value = mix(base &+ counter.add(1, ordering: .relaxed).newValue)
        var digits = [UInt8](repeating: 0x30, count: 16)
        for index in 0..<16 {
            let nibble = UInt8((value >> (60 - 4 * UInt64(index))) & 0xF)
            digits[index] = nibble < 10 ? 0x30 + nibble : 0x57 + nibble
        }
        return String(decoding: digits, as: UTF8.self)
    }

    private static let base: UInt64 = {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }()
    private static let counter = Atomic<UInt64>(0)

    /// SplitMix64's finaliser: a bijection, so distinct counters give distinct ids.
    private static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Logger.MetadataProvider {
    /// Adds `request_id` to log lines written on behalf of a request.
    public static let gatehouse = Logger.MetadataProvider {
        guard let id = RequestID.current else { return [:] }
        return ["request_id": .string(id)]
    }
}

/// One JSON object per line on stderr: `ts`, `level`, `msg`, `logger`, `source` and the
/// metadata as string fields — for log shippers. The audit log (decisions) is separate.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?
    let label: String

    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: JSONObject = [
            "ts": .string(Timestamp.rfc3339(Date())), "level": .string(event.level.rawValue), "msg": .string(event.message.description),
            "logger": .string(label), "source": .string(event.source),
        ]
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
        if let explicit = event.metadata { all.merge(explicit) { _, new in new } }
        if let error = event.error { all["error"] = .string("\(error)") }
        for (key, value) in all.sorted(by: { $0.key < $1.key }) where fields[key] == nil { fields[key] = .string("\(value)") }
        var line = JSONWriter.bytes(.object(fields))
        line.append(0x0A)
        FileHandle.standardError.write(Data(line))
    }
}
