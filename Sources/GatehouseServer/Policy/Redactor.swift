import MCPWire

/// Removes personal data from answers before they reach the client, as a policy decision asks:
/// detectors over text (emails, phone numbers, card numbers with a Luhn check, national id
/// patterns) and named JSON fields at any depth (their values become "[REDACTED]").
struct Redactor: Sendable {
    enum Detector: String, Sendable, CaseIterable {
        case email
        case phone
        case card
        /// US SSN (123-45-6789), UK NINO (AB123456C), French NIR (15 digits), IBAN.
        case nationalID = "national_id"
    }

    let detectors: Set<Detector>
    /// Lowercased field names.
    let fields: Set<String>

    /// Redacts text; returns the new text and how many matches were replaced. Linear in the
    /// text's length (see `TextScanners`).
    func redact(_ text: String) -> (String, Int) {
        guard !detectors.isEmpty else { return (text, 0) }
        var bytes = Array(text.utf8)
        var count = 0
        func apply(_ detector: Detector, _ scan: ([UInt8]) -> [TextScanners.Match], _ marker: StaticString) {
            guard detectors.contains(detector) else { return }
            let matches = scan(bytes)
            guard !matches.isEmpty else { return }
            count += matches.count
            bytes = TextScanners.replacing(bytes, matches, with: marker)
        }
        apply(.email, TextScanners.emails, "[REDACTED:email]")
        apply(.card, TextScanners.cards, "[REDACTED:card]")
        apply(.nationalID, TextScanners.nationalIDs, "[REDACTED:national_id]")
        apply(.phone, TextScanners.phones, "[REDACTED:phone]")
        return count == 0 ? (text, 0) : (String(decoding: bytes, as: UTF8.self), count)
    }

    /// A JSON number that is a card number (13 to 19 digits passing the Luhn check) is as
    /// personal as the same digits in text.
    /// Also when written signed, with a fraction or an exponent (`-4111…`, `4111….0`, `4.111…e15`).
    func redactsNumber(_ text: String) -> Bool {
        guard detectors.contains(.card), text.utf8.count <= 64 else { return false }
        var digits = Substring(text)
        if digits.hasPrefix("-") { digits = digits.dropFirst() }
        if !digits.utf8.allSatisfy(TextScanners.isDigit) {
            guard let value = Double(digits), value.isFinite, value == value.rounded(), value >= 1e12, value < 1e19 else { return false }
            digits = Substring(String(UInt64(value)))
        }
        guard (13...19).contains(digits.utf8.count) else { return false }
        return TextScanners.luhn(Array(digits.utf8)[...])
    }

    /// Walks a JSON value: named fields are replaced, strings are redacted.
    func redact(_ value: JSONValue, count: inout Int) -> JSONValue {
        switch value {
        case .string(let s):
            guard !detectors.isEmpty else { return value }
            let (text, n) = redact(s)
            count += n
            return n > 0 ? .string(text) : value
        case .array(let items):
            return .array(items.map { redact($0, count: &count) })
        case .number(let text):
            guard redactsNumber(text) else { return value }
            count += 1
            return "[REDACTED:card]"
        case .object(let object):
            var out = JSONObject()
            out.reserveCapacity(object.count)
            // The next number to try per redacted key text, so n renamed keys cost O(n), not O(n²).
            var nextSuffix: [String: Int] = [:]
            for (key, item) in object {
                // Keys are text too (an email used as a key); a redacted key gets a number so
                // two of them stay two entries.
                var outKey = key
                if !detectors.isEmpty {
                    let (text, n) = redact(key)
                    if n > 0 {
                        count += n
                        outKey = text
                        var suffix = nextSuffix[text] ?? 2
                        while out[outKey] != nil || object[outKey] != nil {
                            outKey = "\(text)#\(suffix)"
                            suffix += 1
                        }
                        nextSuffix[text] = suffix
                    }
                }
                let newValue: JSONValue
                if fields.contains(key.lowercased()) {
                    newValue = "[REDACTED]"
                    count += 1
                } else {
                    newValue = redact(item, count: &count)
                }
                out[outKey] = newValue
            }
            return .object(out)
        default:
            return value
        }
    }

    /// Redacts a result: text content, structured content, resource contents, prompt messages —
    /// everything under `result` except `_meta`.
    func redactResult(_ result: JSONValue, count: inout Int) -> JSONValue {
        guard case .object(let object) = result else { return redact(result, count: &count) }
        var out = JSONObject()
        out.reserveCapacity(object.count)
        for (key, item) in object {
            out.append(key, key == "_meta" ? item : redact(item, count: &count))
        }
        return .object(out)
    }

    /// Redacts a JSON-RPC error object: its message and its data (the code stays).
    func redactError(_ error: JSONObject, count: inout Int) -> JSONObject {
        var out = error
        if case .string(let text)? = error["message"] {
            let (redacted, n) = redact(text)
            if n > 0 { out["message"] = .string(redacted); count += n }
        }
        if let data = error["data"] { out["data"] = redact(data, count: &count) }
        return out
    }

    /// Redacts what an upstream sends a client in the middle of a request: a notification's
    /// params (log messages, progress messages, anything else) but `_meta` and `progressToken`;
    /// a server-to-client request's `message` text (elicitation), leaving schemas and the rest
    /// of its shape alone so the client can still answer it.
    func redactMessage(_ message: JSONRPCMessage, count: inout Int) -> JSONRPCMessage {
        guard var params = message.params else { return message }
        var changed = 0
        switch message.kind {
        case .notification:
            var out = JSONObject()
            out.reserveCapacity(params.count)
            for (key, item) in params {
                out.append(key, key == "_meta" || key == "progressToken" ? item : redact(item, count: &changed))
            }
            params = out
        case .request:
            if case .string(let text)? = params["message"] {
                let (redacted, n) = redact(text)
                if n > 0 { params["message"] = .string(redacted); changed += n }
            }
        default:
            return message
        }
        guard changed > 0 else { return message }
        count += changed
        var copy = message
        copy.object["params"] = .object(params)
        return copy
    }

    /// Roughly how much text a value holds, to decide whether redacting it belongs on a thread
    /// of its own rather than on an event loop. Stops counting at `limit`.
    static func textSize(_ value: JSONValue, limit: Int) -> Int {
        var total = 0
        var stack: [JSONValue] = [value]
        while let next = stack.popLast(), total < limit {
            switch next {
            case .string(let s): total += s.utf8.count
            case .number(let n): total += n.utf8.count
            case .array(let items): total += items.count; stack.append(contentsOf: items)
            case .object(let object):
                for entry in object { total += entry.key.utf8.count; stack.append(entry.value) }
            default: total += 1
            }
        }
        return total
    }
}

