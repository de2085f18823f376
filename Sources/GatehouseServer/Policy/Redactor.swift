import Foundation
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

    static let email = try! NSRegularExpression(pattern: #"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"#)
    static let card = try! NSRegularExpression(pattern: #"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])"#)
    static let phone = try! NSRegularExpression(pattern: #"(?<![\w+(])(?:\+|\()?[0-9][0-9 ().-]{7,18}[0-9](?![0-9])"#)
    static let nationalIDs = [
        try! NSRegularExpression(pattern: #"\b[0-9]{3}-[0-9]{2}-[0-9]{4}\b"#),
        try! NSRegularExpression(pattern: #"\b[A-CEGHJ-PR-TW-Z]{2}[0-9]{6}[A-D]\b"#),
        try! NSRegularExpression(pattern: #"\b[12][0-9]{2}(0[1-9]|1[0-2])[0-9]{2}[0-9]{3}[0-9]{3}[0-9]{2}\b"#),
        try! NSRegularExpression(pattern: #"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b"#),
    ]

    /// Redacts text; returns the new text and how many matches were replaced.
    func redact(_ text: String) -> (String, Int) {
        var result = text
        var count = 0
        if detectors.contains(.email) { count += Self.replace(Self.email, in: &result, with: "[REDACTED:email]") }
        if detectors.contains(.card) {
            count += Self.replace(Self.card, in: &result, with: "[REDACTED:card]") { match in
                let digits = match.compactMap(\.wholeNumberValue)
                return (13...19).contains(digits.count) && Self.luhn(digits)
            }
        }
        if detectors.contains(.nationalID) {
            for pattern in Self.nationalIDs { count += Self.replace(pattern, in: &result, with: "[REDACTED:national_id]") }
        }
        if detectors.contains(.phone) {
            // 10 to 15 digits written like a phone number: a leading + or separators (so that
            // dates, timestamps and ids are left alone).
            count += Self.replace(Self.phone, in: &result, with: "[REDACTED:phone]") { match in
                (10...15).contains(match.count(where: \.isNumber))
                    && (match.hasPrefix("+") || match.hasPrefix("(") || match.count(where: { " ().-".contains($0) }) >= 2)
            }
        }
        return (result, count)
    }

    static func luhn(_ digits: [Int]) -> Bool {
        var sum = 0
        for (i, d) in digits.reversed().enumerated() {
            if i % 2 == 1 {
                let doubled = d * 2
                sum += doubled > 9 ? doubled - 9 : doubled
            } else {
                sum += d
            }
        }
        return sum % 10 == 0
    }

    static func replace(_ pattern: NSRegularExpression, in text: inout String, with replacement: String, where accept: (Substring) -> Bool = { _ in true }) -> Int {
        let ns = text as NSString
        let matches = pattern.matches(in: text, range: NSRange(location: 0, length: ns.length))
        var count = 0
        for match in matches.reversed() {
            guard let range = Range(match.range, in: text) else { continue }
            guard accept(text[range]) else { continue }
            text.replaceSubrange(range, with: replacement)
            count += 1
        }
        return count
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
        case .object(let object):
            var out = JSONObject()
            for (key, item) in object {
                if fields.contains(key.lowercased()) {
                    out[key] = "[REDACTED]"
                    count += 1
                } else {
                    out[key] = redact(item, count: &count)
                }
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
        for (key, item) in object {
            out[key] = key == "_meta" ? item : redact(item, count: &count)
        }
        return .object(out)
    }
}
