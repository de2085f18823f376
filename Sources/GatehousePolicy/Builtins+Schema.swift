import Foundation

/// `json.verify_schema` and `json.match_schema`: JSON Schema (draft 4/6/7) as OPA's gojsonschema
/// reports it — type, properties, required, additionalProperties, items, enum, const, minimum/maximum
/// (and exclusive forms), minLength/maxLength, pattern, minItems/maxItems, anyOf/oneOf/allOf/not and
/// `$ref` to `#/definitions/...`.
struct JSONSchema {
    struct Failure: Error { let message: String }
    struct Issue { let type: String, field: String, desc: String }

    let root: Value

    /// The schema operand: a JSON string or an object.
    static func load(_ v: Value, position: Int) throws -> JSONSchema {
        var s = v
        if case .string(let text) = v {
            guard let parsed = try? JSON.parse(text) else { throw Failure(message: "jsonschema: invalid JSON string") }
            s = parsed
        } else if case .object = v {} else {
            // Literal arguments of other types are refused by the type check; at run time OPA
            // reports the wrong type as a schema error.
            throw Failure(message: "jsonschema: wrong type, expected string or object")
        }
        switch s {
        case .object, .bool: break  // a JSON text may hold a boolean schema
        default: throw Failure(message: "jsonschema: schema is invalid")
        }
        try check(s)
        return JSONSchema(root: s)
    }

    static let typeNames: Set<String> = ["array", "boolean", "integer", "number", "null", "object", "string"]

    /// The checks gojsonschema makes while loading a schema (the common ones).
    static func check(_ s: Value) throws {
        guard case .object(let o) = s else { return }
        if let t = o[.string("type")] {
            let names: [Value]
            if case .array(let a) = t { names = a } else { names = [t] }
            for n in names {
                guard case .string(let name) = n, typeNames.contains(name) else {
                    throw Failure(message: "jsonschema: has a primitive type that is NOT VALID -- given: /\(n.stringValue ?? JSON.serialize(n))/ Expected valid values are:[array boolean integer number null object string]")
                }
            }
        }
        for k in ["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"] {
            if case .number(let n)? = o[.string(k)], n.doubleValue < 0 { throw Failure(message: "jsonschema: \(k) must be greater than or equal to 0") }
        }
        for (k, v) in o {
            guard case .string(let key) = k else { continue }
            switch key {
            case "properties", "definitions", "patternProperties":
                if case .object(let m) = v { for sub in m.values { try check(sub) } }
            case "items", "additionalProperties", "not", "additionalItems":
                if case .array(let a) = v { for sub in a { try check(sub) } } else { try check(v) }
            case "anyOf", "oneOf", "allOf":
                if case .array(let a) = v { for sub in a { try check(sub) } }
            default: break
            }
        }
    }

    func validate(_ doc: Value) -> [Issue] {
        var out: [Issue] = []
        validate(doc, root, path: [], &out, depth: 0)
        return out
    }

    static func field(_ path: [String]) -> String { path.isEmpty ? "(root)" : path.joined(separator: ".") }

    static func kind(_ v: Value) -> String {
        switch v {
        case .null: return "null"
        case .bool: return "boolean"
        case .number(let n): return n.isInteger ? "integer" : "number"
        case .string: return "string"
        case .array, .set: return "array"
        case .object: return "object"
        }
    }

    func resolve(_ ref: String) -> Value? {
        guard ref.hasPrefix("#") else { return nil }
        var cur = root
        for part in ref.dropFirst().split(separator: "/") {
            let key = part.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
            guard let next = cur[key] else { return nil }
            cur = next
        }
        return cur
    }
}

extension JSONSchema {
    func validate(_ doc: Value, _ schema: Value, path: [String], _ out: inout [Issue], depth: Int) {
        guard depth < 64, case .object(let s) = schema else {
            if case .bool(false) = schema { out.append(Issue(type: "false", field: Self.field(path), desc: "False always fails validation")) }
            return
        }
        let f = Self.field(path)
        if case .string(let ref)? = s[.string("$ref")], let target = resolve(ref) {
            validate(doc, target, path: path, &out, depth: depth + 1)
            return
        }
        if let t = s[.string("type")] {
            let names: [String]
            if case .array(let a) = t { names = a.compactMap { $0.stringValue } } else { names = [t.stringValue ?? ""] }
            let k = Self.kind(doc)
            if !(names.contains(k) || (k == "integer" && names.contains("number"))) {
                out.append(Issue(type: "invalid_type", field: f, desc: "Invalid type. Expected: \(names.count == 1 ? names[0] : "[" + names.joined(separator: ",") + "]"), given: \(k)"))
                return
            }
        }
        func passes(_ sub: Value) -> Bool {
            var tmp: [Issue] = []
            validate(doc, sub, path: path, &tmp, depth: depth + 1)
            return tmp.isEmpty
        }
        if case .array(let subs)? = s[.string("anyOf")], !subs.contains(where: passes) {
            out.append(Issue(type: "number_any_of", field: f, desc: "Must validate at least one schema (anyOf)"))
            if let first = subs.first { validate(doc, first, path: path, &out, depth: depth + 1) }
        }
        if case .array(let subs)? = s[.string("oneOf")], subs.filter(passes).count != 1 {
            out.append(Issue(type: "number_one_of", field: f, desc: "Must validate one and only one schema (oneOf)"))
        }
        if case .array(let subs)? = s[.string("allOf")] {
            var failed = false
            for sub in subs {
                let before = out.count
                validate(doc, sub, path: path, &out, depth: depth + 1)
                if out.count != before { failed = true }
            }
            if failed { out.append(Issue(type: "number_all_of", field: f, desc: "Must validate all the schemas (allOf)")) }
        }
        if let sub = s[.string("not")], passes(sub) {
            out.append(Issue(type: "number_not", field: f, desc: "Must not validate the schema (not)"))
        }
        if let c = s[.string("const")], c != doc {
            out.append(Issue(type: "const", field: f, desc: "\(f) does not match: \(JSON.serialize(c))"))
        }
        if case .array(let options)? = s[.string("enum")], !options.contains(doc) {
            out.append(Issue(type: "enum", field: f, desc: "\(f) must be one of the following: \(options.map { JSON.serialize($0) }.joined(separator: ", "))"))
        }
        switch doc {
        case .array(let items): validateArray(items, s, path: path, &out, depth: depth)
        case .object(let o): validateObject(o, s, path: path, &out, depth: depth)
        case .string(let str): validateString(str, s, f, &out)
        case .number(let n): validateNumber(n, s, f, &out)
        default: break
        }
    }

    func validateArray(_ items: [Value], _ s: [Value: Value], path: [String], _ out: inout [Issue], depth: Int) {
        let f = Self.field(path)
        switch s[.string("items")] {
        case .array(let list)?:
            for (i, e) in items.enumerated() where i < list.count { validate(e, list[i], path: path + [String(i)], &out, depth: depth + 1) }
        case let sub?:
            for (i, e) in items.enumerated() { validate(e, sub, path: path + [String(i)], &out, depth: depth + 1) }
        case nil: break
        }
        if case .number(let n)? = s[.string("minItems")], Double(items.count) < n.doubleValue {
            out.append(Issue(type: "array_min_items", field: f, desc: "Array must have at least \(n) items"))
        }
        if case .number(let n)? = s[.string("maxItems")], Double(items.count) > n.doubleValue {
            out.append(Issue(type: "array_max_items", field: f, desc: "Array must have at most \(n) items"))
        }
        if case .bool(true)? = s[.string("uniqueItems")] {
            // One pass with a table (pairwise comparison was quadratic in a caller's array).
            // Every repeat is reported against the previous occurrence, as gojsonschema does.
            var seen: [Value: Int] = [:]
            for (j, item) in items.enumerated() {
                if let i = seen[item] {
                    out.append(Issue(type: "unique", field: f, desc: "array items[\(i),\(j)] must be unique"))
                }
                seen[item] = j
            }
        }
    }

    func validateObject(_ o: [Value: Value], _ s: [Value: Value], path: [String], _ out: inout [Issue], depth: Int) {
        let f = Self.field(path)
        if case .array(let req)? = s[.string("required")] {
            for r in req where o[r] == nil {
                out.append(Issue(type: "required", field: f, desc: "\(r.stringValue ?? "") is required"))
            }
        }
        let props: [Value: Value]
        if case .object(let p)? = s[.string("properties")] { props = p } else { props = [:] }
        let additional = s[.string("additionalProperties")]
        for k in o.keys.sorted() where props[k] == nil {
            if case .bool(false)? = additional {
                out.append(Issue(type: "additional_property_not_allowed", field: f, desc: "Additional property \(k.stringValue ?? "") is not allowed"))
            }
        }
        for (k, sub) in props.sorted(by: { $0.key < $1.key }) {
            if let v = o[k] { validate(v, sub, path: path + [k.stringValue ?? ""], &out, depth: depth + 1) }
        }
        if case .object? = additional, let sub = additional {
            for (k, v) in o.sorted(by: { $0.key < $1.key }) where props[k] == nil {
                validate(v, sub, path: path + [k.stringValue ?? ""], &out, depth: depth + 1)
            }
        }
    }

    func validateString(_ str: String, _ s: [Value: Value], _ f: String, _ out: inout [Issue]) {
        let len = str.unicodeScalars.count
        if case .number(let n)? = s[.string("minLength")], Double(len) < n.doubleValue {
            out.append(Issue(type: "string_gte", field: f, desc: "String length must be greater than or equal to \(n)"))
        }
        if case .number(let n)? = s[.string("maxLength")], Double(len) > n.doubleValue {
            out.append(Issue(type: "string_lte", field: f, desc: "String length must be less than or equal to \(n)"))
        }
        if case .string(let p)? = s[.string("pattern")],
           let re = try? compiledRegex(p), !re.matches(str) {
            out.append(Issue(type: "pattern", field: f, desc: "Does not match pattern '\(p)'"))
        }
    }

    func validateNumber(_ n: Number, _ s: [Value: Value], _ f: String, _ out: inout [Issue]) {
        if case .number(let m)? = s[.string("multipleOf")], !m.isZero, let q = Number.divide(n, m), !q.isInteger {
            out.append(Issue(type: "multiple_of", field: f, desc: "Must be a multiple of \(m)"))
        }
        if case .number(let m)? = s[.string("maximum")] {
            if case .bool(true)? = s[.string("exclusiveMaximum")] {
                if Number.compare(n, m) >= 0 { out.append(Issue(type: "number_lt", field: f, desc: "Must be less than \(m)")) }
            } else if Number.compare(n, m) > 0 {
                out.append(Issue(type: "number_lte", field: f, desc: "Must be less than or equal to \(m)"))
            }
        }
        if case .number(let m)? = s[.string("exclusiveMaximum")], Number.compare(n, m) >= 0 {
            out.append(Issue(type: "number_lt", field: f, desc: "Must be less than \(m)"))
        }
        if case .number(let m)? = s[.string("minimum")] {
            if case .bool(true)? = s[.string("exclusiveMinimum")] {
                if Number.compare(n, m) <= 0 { out.append(Issue(type: "number_gt", field: f, desc: "Must be greater than \(m)")) }
            } else if Number.compare(n, m) < 0 {
                out.append(Issue(type: "number_gte", field: f, desc: "Must be greater than or equal to \(m)"))
            }
        }
        if case .number(let m)? = s[.string("exclusiveMinimum")], Number.compare(n, m) <= 0 {
            out.append(Issue(type: "number_gt", field: f, desc: "Must be greater than \(m)"))
        }
    }
}

extension Builtins {
    static let schema: [Builtin] = [
        Builtin("json.verify_schema", 1) { a, _ in
            do {
                _ = try JSONSchema.load(a[0], position: 1)
                return .array([.true, .null])
            } catch let e as JSONSchema.Failure {
                return .array([.false, .string(e.message)])
            }
        },
        Builtin("json.match_schema", 2) { a, _ in
            var doc = a[0]
            switch doc {
            case .string(let text):
                guard let parsed = try? JSON.parse(text) else { throw BuiltinError("document: invalid JSON string") }
                doc = parsed
            case .object, .array, .set: break  // OPA also takes an array (from input, say) as it is
            default: throw typeError(1, "any of {object, string}", doc)
            }
            let schema: JSONSchema
            do { schema = try JSONSchema.load(a[1], position: 2) } catch let e as JSONSchema.Failure { throw BuiltinError(e.message) }
            let issues = schema.validate(doc)
            let errors: [Value] = issues.map {
                .object([.string("error"): .string("\($0.field == "(root)" ? "(Root)" : $0.field): \($0.desc)"), .string("type"): .string($0.type),
                         .string("field"): .string($0.field == "(root)" ? "(Root)" : $0.field), .string("desc"): .string($0.desc)])
            }
            return .array([.bool(issues.isEmpty), .array(errors)])
        },
    ]
}
