import Crypto
import Foundation
import GatehouseConfig

/// Where the running config comes from: a file, plus the command line's overrides, applied the
/// same way at start and on every reload (so `--port` does not read as a change of
/// `spec.listen`).
public struct ConfigSource: Sendable {
    public let path: String
    public var bind: String?
    public var port: Int?

    public init(path: String, bind: String? = nil, port: Int? = nil) {
        self.path = path
        self.bind = bind
        self.port = port
    }

    /// Loads and validates the file. Throws `ConfigError` with every diagnostic.
    public func load() throws(ConfigError) -> GatewayConfig {
        var config = try ConfigLoader().load(path: path)
        if let bind { config.listen.bind = bind }
        if let port { config.listen.port = port }
        return config
    }

    /// The version of what `config` was loaded from: the first 12 hex digits of SHA-256 over the
    /// config file and every policy file it names (a policy edit is a new version too).
    public func version(of config: GatewayConfig?) -> String {
        var hasher = SHA256()
        hasher.update(data: (try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data())
        for file in Self.policyFiles(config) {
            hasher.update(data: Data(file.utf8))
            hasher.update(data: (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data())
        }
        return hasher.finalize().prefix(6).map { String(format: "%02x", $0) }.joined()
    }

    /// The policy's files (directories walked for .rego, .json and .yaml files), sorted.
    static func policyFiles(_ config: GatewayConfig?) -> [String] {
        var files: [String] = []
        let manager = FileManager.default
        for path in config?.policy?.regoPaths ?? [] {
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: path, isDirectory: &isDirectory) else { continue }
            if !isDirectory.boolValue {
                files.append(path)
                continue
            }
            guard let walker = manager.enumerator(atPath: path) else { continue }
            for case let name as String in walker where [".rego", ".json", ".yaml", ".yml"].contains(where: name.hasSuffix) {
                files.append((path as NSString).appendingPathComponent(name))
            }
        }
        return files.sorted()
    }
}
