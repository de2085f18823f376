import ArgumentParser
import Foundation
import GatehousePolicy

/// `gatehouse policy test|eval|check`: work with Rego policies offline.
struct PolicyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Test, evaluate and check Rego policies.",
        subcommands: [Test.self, Eval.self, Check.self])

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

        func run() async throws {
            let policy = PolicyCommand.compile(data, version: versionOption.version)
            var inputValue: Value?
            if let path = input {
                let text: String
                if path == "-" {
                    text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
                } else {
                    guard let d = FileManager.default.contents(atPath: path) else { PolicyCommand.fail("error: cannot read input \(path)") }
                    text = String(decoding: d, as: UTF8.self)
                }
                let yaml = path.hasSuffix(".yaml") || path.hasSuffix(".yml")
                do {
                    inputValue = try PolicyLoader.parseDocument(text, yaml: yaml)
                } catch {
                    PolicyCommand.fail("error: input \(path): \(error)")
                }
            }
            let q: CompiledQuery
            do {
                q = try policy.prepare(query: query)
            } catch {
                PolicyCommand.fail(error.description)
            }
            let options = EvalOptions(
                input: inputValue, strictBuiltinErrors: !nonStrict,
                print: { line in FileHandle.standardError.write(Data((line + "\n").utf8)) })
            do {
                if q.variableNames.isEmpty {
                    if let v = try policy.evalValue(q, options: options) {
                        print(JSON.serialize(v, pretty: true))
                    } else {
                        FileHandle.standardError.write(Data("undefined\n".utf8))
                        if fail { throw ExitCode(1) }
                    }
                } else {
                    let rows = try policy.eval(q, options: options)
                    let arr = Value.array(rows.map { row in
                        .object(Dictionary(uniqueKeysWithValues: row.map { (Value.string($0.key), $0.value) }))
                    })
                    print(JSON.serialize(arr, pretty: true))
                    if rows.isEmpty && fail { throw ExitCode(1) }
                }
            } catch let e as PolicyError {
                PolicyCommand.fail(e.description)
            }
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
