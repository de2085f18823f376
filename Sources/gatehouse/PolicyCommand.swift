import ArgumentParser
import Foundation
import GatehousePolicy

/// `gatehouse policy test|eval|check`: work with Rego policies offline.
struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Test, evaluate and check Rego policies.",
        subcommands: [Test.self, Eval.self, Check.self, BuiltinList.self])

    struct VersionOption: ParsableArguments {
        @Flag(name: .customLong("v0-compatible"), help: "Parse modules as Rego v0 (OPA 0.x syntax).")
        var v0 = false
        var version: RegoVersion? { v0 ? .v0 : nil }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data((message.hasSuffix("\n") ? message : message + "\n").utf8))
        Foundation.exit(1)
    }

    static func compile(_ paths: [String], version: RegoVersion?) -> CompiledPolicy {
        let bundle: PolicyBundle
        do {
            bundle = try PolicyLoader.load(paths: paths, version: version)
        } catch {
            fail("error: \(error)")
        }
        do {
            return try CompiledPolicy.compile(modules: bundle.modules, data: bundle.data)
        } catch {
            fail(error.description)
        }
    }

    struct Test: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run every test_* rule (like `opa test`); exit 1 on any failure or error.")
        @Argument(help: "Files or directories with .rego modules and .json/.yaml data.")
        var paths: [String] = ["."]
        @Flag(name: .shortAndLong, help: "Print the result of every test.")
        var verbose = false
        @Option(name: .customLong("run"), help: "Only run tests whose name contains this text.")
        var run: String?
        @OptionGroup var versionOption: VersionOption

        func run() async throws {
            let policy = PolicyCommand.compile(paths, version: versionOption.version)
            let results = PolicyTestRunner.run(policy: policy, filter: run)
            print(PolicyTestRunner.report(results, verbose: verbose), terminator: "")
            if results.contains(where: { $0.outcome == .fail || $0.outcome == .error }) {
                throw ExitCode(1)
            }
        }
    }

    struct Eval: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Evaluate a query and print the result as JSON.",
            discussion: """
                A query that is a single expression without variables (e.g. data.mcp.authz.allow) prints \
                its value; otherwise every solution is printed as an object of variable bindings. \
                An undefined result prints `undefined` to standard error.
                """)
        @Option(name: .shortAndLong, help: "Policy or data file/directory (repeatable).")
        var data: [String] = []
        @Option(name: .shortAndLong, help: "Input document (JSON or YAML file; '-' for standard input).")
        var input: String?
        @Flag(help: "Exit with status 1 when the result is undefined or empty.")
        var fail = false
        @Flag(name: .customLong("non-strict"), help: "Builtin errors make the expression undefined instead of failing the query (OPA's default).")
        var nonStrict = false
        @OptionGroup var versionOption: VersionOption
        @Argument(help: "The query, e.g. data.mcp.authz.allow")
        var query: String

        @Option(help: "Output: text (the value, or rows of bindings) or json (one object: {\"result\": v}, {\"undefined\": true} or {\"error\": {\"code\", \"message\"}}, as the OPA differential runner reads it).")
        var format: OutputFormat = .text

        enum OutputFormat: String, ExpressibleByArgument { case text, json }

        func run() async throws {
            let outcome = evaluate()
            switch (format, outcome) {
            case (.json, _):
                print(JSON.serialize(outcome.json))
                if case .failed = outcome { throw ExitCode(1) }
            case (.text, .value(let v)):
                print(JSON.serialize(v, pretty: true))
            case (.text, .undefined):
                FileHandle.standardError.write(Data("undefined\n".utf8))
                if fail { throw ExitCode(1) }
            case (.text, .rows(let rows)):
                print(JSON.serialize(rows, pretty: true))
                if case .array(let a) = rows, a.isEmpty, fail { throw ExitCode(1) }
            case (.text, .failed(_, let message)):
                PolicyCommand.fail(message)
            }
        }

        /// Loads, compiles and evaluates; every failure becomes `.failed` with OPA's error code.
        func evaluate() -> EvalOutcome {
            let bundle: PolicyBundle
            do {
                bundle = try PolicyLoader.load(paths: data, version: versionOption.version)
            } catch {
                return .failed(code: "load_error", message: "error: \(error)")
            }
            let policy: CompiledPolicy
            let q: CompiledQuery
            do {
                policy = try CompiledPolicy.compile(modules: bundle.modules, data: bundle.data)
                q = try policy.prepare(query: query)
            } catch {
                return .failed(code: error.errors.first?.code.rawValue ?? "rego_compile_error", message: error.description)
            }
            var inputValue: Value?
            if let path = input {
                switch readInput(path) {
                case .success(let v): inputValue = v
                case .failure(let message): return .failed(code: "input_error", message: message.text)
                }
            }
            let options = EvalOptions(
                input: inputValue, strictBuiltinErrors: !nonStrict,
                print: { line in FileHandle.standardError.write(Data((line + "\n").utf8)) })
            do {
                if q.variableNames.isEmpty {
                    return try policy.evalValue(q, options: options).map(EvalOutcome.value) ?? .undefined
                }
                let rows = try policy.eval(q, options: options)
                return .rows(.array(rows.map { row in
                    .object(Dictionary(uniqueKeysWithValues: row.map { (Value.string($0.key), $0.value) }))
                }))
            } catch {
                return .failed(code: error.code.rawValue, message: error.description)
            }
        }

        struct InputError: Error { let text: String }

        func readInput(_ path: String) -> Result<Value, InputError> {
            let text: String
            if path == "-" {
                text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
            } else {
                guard let d = FileManager.default.contents(atPath: path) else {
                    return .failure(InputError(text: "error: cannot read input \(path)"))
                }
                text = String(decoding: d, as: UTF8.self)
            }
            do {
                return .success(try PolicyLoader.parseDocument(text, yaml: path.hasSuffix(".yaml") || path.hasSuffix(".yml")))
            } catch {
                return .failure(InputError(text: "error: input \(path): \(error)"))
            }
        }
    }

    /// What `policy eval` found.
    enum EvalOutcome {
        case value(Value)
        case undefined
        case rows(Value)
        case failed(code: String, message: String)

        var json: Value {
            switch self {
            case .value(let v), .rows(let v): return .object([.string("result"): v])
            case .undefined: return .object([.string("undefined"): .true])
            case .failed(let code, let message):
                return .object([.string("error"): .object([.string("code"): .string(code), .string("message"): .string(message)])])
            }
        }
    }

    struct BuiltinList: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "builtins", abstract: "List the builtin functions this engine implements.")
        @Flag(help: "Print the index docs/policy.md carries (with OPA's builtins that are missing).")
        var markdown = false

        func run() async throws {
            print(markdown ? PolicyBuiltins.markdownIndex : PolicyBuiltins.names.joined(separator: "\n"), terminator: markdown ? "" : "\n")
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Parse and compile policies; report every error.")
        @Argument(help: "Files or directories with .rego modules.")
        var paths: [String] = ["."]
        @OptionGroup var versionOption: VersionOption

        func run() async throws {
            let bundle: PolicyBundle
            do {
                bundle = try PolicyLoader.load(paths: paths, version: versionOption.version)
            } catch {
                PolicyCommand.fail("error: \(error)")
            }
            do {
                _ = try CompiledPolicy.compile(modules: bundle.modules, data: bundle.data)
                print("\(bundle.modules.count) module\(bundle.modules.count == 1 ? "" : "s") OK")
            } catch {
                PolicyCommand.fail(error.description)
            }
        }
    }
}
