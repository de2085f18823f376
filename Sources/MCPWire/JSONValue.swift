/// A JSON value that keeps what a gateway must not change: the order of object keys
/// and the exact text of numbers. Gatehouse rewrites only the few fields it owns
/// (ids, progress tokens, `_meta` keys) and writes everything else back byte-for-byte
/// equivalent, so `1.0` stays `1.0` and `12345678901234567890` stays exact.
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    /// The number's original text (already validated as a JSON number).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public static func int(_ value: Int) -> JSONValue { .number(String(value)) }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var objectValue: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The number as an `Int` when its text is an integer that fits.
    public var intValue: Int? {
        if case .number(let text) = self {
            if let i = Int(text) { return i }
            if let d = Double(text), d.rounded() == d, abs(d) < 9.0e15 { return Int(d) }
        }
        return nil
    }

    public var doubleValue: Double? {
        if case .number(let text) = self { return Double(text) }
        return nil
    }

    public var isNull: Bool {
        if case .null = self { return true }
        return false
    }

    public subscript(key: String) -> JSONValue? {
        objectValue?[key]
    }

    /// A short human name of the value's type, for error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

/// A JSON object whose keys keep their order. Small objects (the usual MCP shape) are looked
/// up by a linear scan, which beats hashing a few keys; once an object has more than
/// `indexThreshold` keys it also keeps a hash index from key to position, so that parsing,
/// rewriting and lookups stay linear in the object's size whatever a peer sends (an object of
/// 200,000 keys was quadratic before and froze an event loop for minutes).
public struct JSONObject: Sendable, Hashable, Sequence {
    /// Keys in order. Mutate through the subscript, `append`, `setValue(_:at:)` so the index
    /// stays right.
    public private(set) var entries: [(key: String, value: JSONValue)]
    /// Key → position of its first entry, kept only for objects over `indexThreshold` keys.
    private var index: [String: Int]?

    public static let indexThreshold = 16

    public init() { entries = [] }

    public init(_ entries: [(key: String, value: JSONValue)]) {
        self.entries = entries
        if entries.count > Self.indexThreshold { buildIndex() }
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }
    public var keys: [String] { entries.map(\.key) }

    private mutating func buildIndex() {
        var built = [String: Int](minimumCapacity: entries.count * 2)
        for (position, entry) in entries.enumerated() where built[entry.key] == nil { built[entry.key] = position }
        index = built
    }

    /// The position of `key`'s entry.
    public func position(of key: String) -> Int? {
        if let index { return index[key] }
        for position in entries.indices where entries[position].key == key { return position }
        return nil
    }

    public subscript(key: String) -> JSONValue? {
        get {
            if let index { return index[key].map { entries[$0].value } }
            for entry in entries where entry.key == key { return entry.value }
            return nil
        }
        set {
            if let position = position(of: key) {
                if let newValue {
                    entries[position].value = newValue
                } else {
                    entries.remove(at: position)
                    if index != nil { buildIndex() }
                }
            } else if let newValue {
                append(key, newValue)
            }
        }
    }

    /// Appends an entry whose key the caller knows is not in the object yet.
    public mutating func append(_ key: String, _ value: JSONValue) {
        entries.append((key, value))
        if index != nil {
            index![key] = entries.count - 1
        } else if entries.count > Self.indexThreshold {
            buildIndex()
        }
    }

    /// Replaces the value at a position (keys are unchanged, so the index stays right).
    public mutating func setValue(_ value: JSONValue, at position: Int) {
        entries[position].value = value
    }

    public mutating func reserveCapacity(_ capacity: Int) { entries.reserveCapacity(capacity) }

    public func makeIterator() -> IndexingIterator<[(key: String, value: JSONValue)]> {
        entries.makeIterator()
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.entries.count == rhs.entries.count else { return false }
        for (l, r) in zip(lhs.entries, rhs.entries) where l.key != r.key || l.value != r.value {
            return false
        }
        return true
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(entries.count)
        for entry in entries {
            hasher.combine(entry.key)
            hasher.combine(entry.value)
        }
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements.map { (key: $0.0, value: $0.1) })
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .number(String(value)) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { (key: $0.0, value: $0.1) }))
    }
    public init(nilLiteral: ()) { self = .null }
}
