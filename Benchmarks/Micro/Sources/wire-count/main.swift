// wire-count CASE ITERATIONS: runs one micro-benchmark case ITERATIONS times and nothing
// else, so `valgrind --tool=callgrind` can count its instructions (see micro-callgrind.sh:
// two runs with different counts, the difference divided by the iteration difference is the
// cost of one operation, free of start-up noise). `wire-count list` prints the case names.
import WireCases

#if canImport(Glibc)
import Glibc
#endif

let args = CommandLine.arguments
if args.count == 2, args[1] == "list" {
    for c in WireCases.all { print(c.name) }
    exit(0)
}
guard args.count == 3, let iterations = Int(args[2]), let c = WireCases.all.first(where: { $0.name == args[1] }) else {
    print("usage: wire-count CASE ITERATIONS | wire-count list")
    exit(2)
}
// Build lazily initialised inputs outside the measured loop's first iteration as well.
var sink = c.run()
for _ in 0..<iterations { sink &+= c.run() }
print("\(c.name) \(iterations) sink=\(sink)")
