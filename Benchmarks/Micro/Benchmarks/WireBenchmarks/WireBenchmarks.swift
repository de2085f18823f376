// Wall clock, CPU and malloc counts of the wire layer; run with
//   swift package --package-path Benchmarks/Micro benchmark
// (Instruction counts: Benchmarks/micro-callgrind.sh; this machine's VM exposes no CPU
// performance counters, so the framework's .instructions metric is not used here.)
import Benchmark
import WireCases

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput],
        warmupIterations: 10,
        maxDuration: .seconds(2),
        maxIterations: 100_000)
    for c in WireCases.all {
        let run = c.run
        Benchmark(c.name) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(run())
            }
        }
    }
}
