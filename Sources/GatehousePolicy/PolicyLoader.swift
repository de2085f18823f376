import Foundation

/// Loads `.rego` modules and data files (`.json`, `.yaml`, `.yml`) from files and directories.
/// Data files are placed into `data` at their directory path relative to the root given
/// (`policies/roles/data.json` loaded from `policies` lands at `data.roles`), as `opa` does.
public struct PolicyBundle: Sendable {
    public var modules: [PolicyModule] = []
    public var data: Value = .emptyObject
    public init() {}
}

public enum PolicyLoader {
    public struct LoadError: Error, CustomStringConvertible, Sendable {
        public let path: String
        public let message: String
        public var description: String { "\(path): \(message)" }
    }

    public static func load(paths: [String], version: RegoVersion? = nil) throws -> PolicyBundle {
        var bundle = PolicyBundle()
        let fm = FileManager.default
        for root in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: root, isDirectory: &isDir) else {
                throw LoadError(path: root, message: "no such file or directory")
            }
            if !isDir.boolValue {
                try loadFile(root, relativeDir: [], into: &bundle, version: version)
                continue
            }
            guard let e = fm.enumerator(atPath: root) else { continue }
            var files: [String] = []
            while let rel = e.nextObject() as? String {
                let last = (rel as NSString).lastPathComponent
                if last.hasPrefix(".") {
                    e.skipDescendants()
                    continue
                }
                files.append(rel)
            }
            for rel in files.sorted() {
                let full = (root as NSString).appendingPathComponent(rel)
                var d: ObjCBool = false
                guard fm.fileExists(atPath: full, isDirectory: &d), !d.boolValue else { continue }
                let dir = (rel as NSString).deletingLastPathComponent
                let comps = dir.isEmpty ? [] : dir.split(separator: "/").map(String.init)
                try loadFile(full, relativeDir: comps, into: &bundle, version: version)
            }
        }
        return bundle
    }

    static func loadFile(_ path: String, relativeDir: [String], into bundle: inout PolicyBundle, version: RegoVersion?) throws {
        let ext = (path as NSString).pathExtension.lowercased()
        switch ext {
        case "rego":
            let text = try readText(path)
            bundle.modules.append(PolicyModule(name: path, source: text, version: version))
        case "json", "yaml", "yml":
            let text = try readText(path)
            let v: Value
            do {
                v = ext == "json" ? try JSON.parse(text) : try Builtins.yamlParse(text)
            } catch let e as JSON.ParseError {
                throw LoadError(path: path, message: e.description)
            } catch let e as BuiltinError {
                throw LoadError(path: path, message: e.message)
            }
            guard case .object = v else { throw LoadError(path: path, message: "data file must contain an object") }
            var wrapped = v
            for c in relativeDir.reversed() { wrapped = .object([.string(c): wrapped]) }
            bundle.data = try merge(bundle.data, wrapped, path: path)
        default:
            break
        }
    }

    static func readText(_ path: String) throws -> String {
        guard let d = FileManager.default.contents(atPath: path) else {
            throw LoadError(path: path, message: "cannot read file")
        }
        return String(decoding: d, as: UTF8.self)
    }

    static func merge(_ a: Value, _ b: Value, path: String) throws -> Value {
        guard case .object(var ao) = a, case .object(let bo) = b else {
            throw LoadError(path: path, message: "conflicting data: merge of non-object values")
        }
        for (k, v) in bo {
            if let existing = ao[k] {
                ao[k] = try merge(existing, v, path: path)
            } else {
                ao[k] = v
            }
        }
        return .object(ao)
    }

    /// Parses an input document from JSON or YAML text.
    public static func parseDocument(_ text: String, yaml: Bool) throws -> Value {
        do {
            return yaml ? try Builtins.yamlParse(text) : try JSON.parse(text)
        } catch let e as BuiltinError {
            throw LoadError(path: "input", message: e.message)
        }
    }
}
