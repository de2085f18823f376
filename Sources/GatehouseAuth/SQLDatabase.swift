import Foundation
import GatehouseConfig
import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import SQLiteNIO

/// One SQL value as the auth store uses them: text, 64-bit integers, or NULL.
public enum SQLValue: Sendable, Equatable {
    case text(String)
    case int(Int64)
    case null

    public var string: String? {
        if case .text(let s) = self { return s }
        return nil
    }

    public var int: Int64? {
        if case .int(let i) = self { return i }
        return nil
    }

    public init(_ text: String?) { self = text.map(SQLValue.text) ?? .null }
    public init(_ int: Int64?) { self = int.map(SQLValue.int) ?? .null }
}

/// The seam between the auth store and a database engine. Statements use `?` placeholders and
/// only the SQL both SQLite and PostgreSQL understand (TEXT, BIGINT, UPDATE ... RETURNING).
public protocol SQLDatabase: Sendable {
    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [[SQLValue]]
    /// Runs migration statements once, serialized across processes sharing the database.
    func migrate(_ statements: [String]) async throws
    /// The engine's background work (PostgreSQL's connection pool); returns when cancelled.
    func run() async
    func close() async
}

public struct StorageError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// SQLite in one file: WAL journal, a busy timeout so the CLI and a running gateway can share it.
final class SQLiteDatabase: SQLDatabase {
    let connection: SQLiteConnection

    private init(connection: SQLiteConnection) { self.connection = connection }

    static func open(path: String, logger: Logger) async throws -> SQLiteDatabase {
        let connection: SQLiteConnection
        do {
            connection = try await SQLiteConnection.open(storage: .file(path: path), logger: logger)
        } catch {
            throw StorageError("cannot open the SQLite database at \(path): \(error); check that its directory exists and is writable")
        }
        let database = SQLiteDatabase(connection: connection)
        _ = try await database.query("PRAGMA busy_timeout = 5000", [])
        _ = try await database.query("PRAGMA journal_mode = WAL", [])
        // The file holds signing keys and credential hashes: owner-only.
        chmod(path, 0o600)
        return database
    }

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [[SQLValue]] {
        let data: [SQLiteData] = binds.map {
            switch $0 {
            case .text(let s): .text(s)
            case .int(let i): .integer(Int(i))
            case .null: .null
            }
        }
        let rows = RowCollector()
        try await connection.query(sql, data) { row in
            rows.append(row.columns.map { column in
                switch column.data {
                case .integer(let i): .int(Int64(i))
                case .float(let d): .int(Int64(d))
                case .text(let s): .text(s)
                case .blob(let b): .text(String(buffer: b))
                case .null: .null
                }
            })
        }
        return rows.rows
    }

    func migrate(_ statements: [String]) async throws {
        // One process at a time: an immediate transaction takes the write lock.
        _ = try await query("BEGIN IMMEDIATE", [])
        do {
            for statement in statements { _ = try await query(statement, []) }
            _ = try await query("COMMIT", [])
        } catch {
            _ = try? await query("ROLLBACK", [])
            throw error
        }
    }

    func run() async {
        try? await Task.sleep(for: .seconds(1 << 40))
    }

    func close() async { try? await connection.close() }
}

private final class RowCollector: @unchecked Sendable {
    // sqlite-nio calls the row handler serially on its thread pool before `query` returns.
    private let lock = NSLock()
    private var collected: [[SQLValue]] = []
    func append(_ row: [SQLValue]) { lock.withLock { collected.append(row) } }
    var rows: [[SQLValue]] { lock.withLock { collected } }
}

/// PostgreSQL through postgres-nio's pooled client (which `run()` drives).
final class PostgresDatabase: SQLDatabase {
    let client: PostgresClient
    let logger: Logger

    init(url: String, logger: Logger) throws {
        guard let components = URLComponents(string: url), let host = components.host else {
            throw StorageError("spec.storage.postgres.url is not a postgres:// URL")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        let sslMode = components.queryItems?.first { $0.name == "sslmode" }?.value
        var configuration = PostgresClient.Configuration(
            host: host, port: components.port ?? 5432, username: components.user?.removingPercentEncoding ?? "postgres",
            password: components.password?.removingPercentEncoding, database: database.isEmpty ? nil : database,
            tls: sslMode == "require" ? .require(.makeClientConfiguration()) : .disable)
        configuration.options.connectTimeout = .seconds(5)
        self.client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.logger = logger
    }

    static func placeholders(_ sql: String) -> String {
        var out = ""
        var n = 0
        for ch in sql {
            if ch == "?" {
                n += 1
                out += "$\(n)"
            } else {
                out.append(ch)
            }
        }
        return out
    }

    static func bindings(_ binds: [SQLValue]) -> PostgresBindings {
        var bindings = PostgresBindings(capacity: binds.count)
        for bind in binds {
            switch bind {
            case .text(let s): bindings.append(s)
            case .int(let i): bindings.append(i)
            case .null: bindings.appendNull()
            }
        }
        return bindings
    }

    static func decode(_ rows: PostgresRowSequence) async throws -> [[SQLValue]] {
        var result: [[SQLValue]] = []
        for try await row in rows {
            var values: [SQLValue] = []
            for cell in row {
                if cell.bytes == nil {
                    values.append(.null)
                } else if [.int8, .int4, .int2].contains(cell.dataType) {
                    values.append(.int(try cell.decode(Int64.self)))
                } else {
                    values.append(.text(try cell.decode(String.self)))
                }
            }
            result.append(values)
        }
        return result
    }

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [[SQLValue]] {
        let query = PostgresQuery(unsafeSQL: Self.placeholders(sql), binds: Self.bindings(binds))
        return try await Self.decode(try await client.query(query))
    }

    func migrate(_ statements: [String]) async throws {
        try await client.withConnection { connection in
            // Replicas starting together: one migrates, the others wait for the lock.
            _ = try await connection.query("SELECT pg_advisory_lock(74260515)", logger: self.logger)
            do {
                for statement in statements {
                    _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
                }
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(74260515)", logger: self.logger)
                throw error
            }
            _ = try await connection.query("SELECT pg_advisory_unlock(74260515)", logger: self.logger)
        }
    }

    func run() async { await client.run() }
    func close() async {}
}
