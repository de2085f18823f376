import ArgumentParser
import Foundation
import GatehouseAuth
import GatehouseConfig
import Logging

struct HashPassword: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hash-password",
        abstract: "Read a password on standard input and print its hash for spec.auth.authorizationServer.users[].passwordHash.")

    func run() throws {
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            throw ValidationError("type the password on standard input (e.g. printf '%s' \"$PASSWORD\" | gatehouse hash-password)")
        }
        print(try PasswordHash.make(line))
    }
}

/// What the commands that work on the config's store share: load the config (its diagnostics
/// on stderr), check it has what the command needs, open and migrate the store, run, close.
enum StoreCommand {
    static func withStore<T: Sendable>(configPath: String, requiring check: (GatewayConfig) throws -> Void,
                                       _ body: @Sendable @escaping (AuthStore, GatewayConfig) async throws -> T) async throws -> T
    {
        let config: GatewayConfig
        do {
            config = try ConfigLoader().load(path: configPath)
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(1)
        }
        try check(config)
        var logger = Logger(label: "gatehouse")
        logger.logLevel = .warning
        let store = try await AuthStore.open(config.storage, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.run() }
            defer { group.cancelAll() }
            try await store.migrate()
            let result = try await body(store, config)
            await store.close()
            return result
        }
    }
}

struct APIKeyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apikey",
        abstract: "Create, list and revoke API keys for machines (stored as hashes in the config's storage).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Options: ParsableArguments {
        @Option(name: .shortAndLong, help: "The gateway's config file (its spec.storage is used).")
        var config: String
    }

    static func withStore<T: Sendable>(_ options: Options, _ body: @Sendable @escaping (AuthStore) async throws -> T) async throws -> T {
        try await StoreCommand.withStore(configPath: options.config, requiring: { config in
            guard let auth = config.auth, auth.apiKeys else {
                throw ValidationError("API keys are not enabled in \(options.config): set spec.auth (apiKeys defaults to true)")
            }
        }) { store, _ in try await body(store) }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key and print it once; only its hash is kept.")
        @OptionGroup var options: Options
        @Option(help: "A name for the key (e.g. the machine using it).") var name: String
        @Option(help: "Who is responsible for it (a team or person).") var owner: String
        @Option(name: .customLong("scope"), help: "A scope it carries (repeat for several).") var scopes: [String] = []
        @Option(help: "Lifetime, e.g. 30d, 12h, 90m, 45s (default: no expiry).") var expiresIn: String?

        func run() async throws {
            var expiry: Int64?
            if let expiresIn {
                guard let seconds = Self.parseDuration(expiresIn) else { throw ValidationError("--expires-in must look like 30d, 12h, 90m or 45s") }
                expiry = Int64(Date().timeIntervalSince1970) + seconds
            }
            let key = Authenticator.apiKeyPrefix + AuthCrypto.randomToken()
            let record = AuthStore.APIKeyRecord(id: "key_" + AuthCrypto.randomToken(bytes: 6), keyHash: AuthCrypto.hash(key), name: name, owner: owner,
                                                scopes: scopes, createdAt: Int64(Date().timeIntervalSince1970), expiresAt: expiry, revokedAt: nil)
            try await APIKeyCommand.withStore(options) { store in try await store.insertAPIKey(record) }
            print("id: \(record.id)")
            print("key: \(key)")
            FileHandle.standardError.write(Data("Store the key now: it is shown only this once.\n".utf8))
        }

        static func parseDuration(_ text: String) -> Int64? {
            guard let unit = text.last, let value = Int64(text.dropLast()), value > 0 else { return nil }
            switch unit {
            case "s": return value
            case "m": return value * 60
            case "h": return value * 3600
            case "d": return value * 86400
            default: return nil
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List keys (never the keys themselves).")
        @OptionGroup var options: Options

        func run() async throws {
            let keys = try await APIKeyCommand.withStore(options) { store in try await store.apiKeys() }
            let now = Int64(Date().timeIntervalSince1970)
            print("ID\tNAME\tOWNER\tSCOPES\tCREATED\tEXPIRES\tSTATE")
            for key in keys {
                let state = key.revokedAt != nil ? "revoked" : (key.expiresAt.map { $0 <= now } ?? false) ? "expired" : "active"
                func date(_ t: Int64?) -> String { t.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval($0))) } ?? "-" }
                print("\(key.id)\t\(key.name)\t\(key.owner)\t\(key.scopes.joined(separator: " "))\t\(date(key.createdAt))\t\(date(key.expiresAt))\t\(state)")
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a key by id; gateways stop accepting it within spec.auth.cacheSeconds.")
        @OptionGroup var options: Options
        @Argument(help: "The key's id (from create or list).") var id: String

        func run() async throws {
            let id = self.id
            let revoked = try await APIKeyCommand.withStore(options) { store in try await store.revokeAPIKey(id: id, now: Int64(Date().timeIntervalSince1970)) }
            guard revoked else {
                FileHandle.standardError.write(Data("no active key with id \(id) (see: gatehouse apikey list)\n".utf8))
                throw ExitCode(1)
            }
            print("revoked \(id)")
        }
    }
}
