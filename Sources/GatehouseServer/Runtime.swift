import NIOCore
import NIOPosix

/// Process-wide runtime settings.
public enum Runtime {
    /// Makes SwiftNIO's event loops (the threads that do the gateway's I/O) Swift concurrency's
    /// global executor, so a request's async code runs where its sockets are served instead of
    /// hopping to the default pool and back at every read and write — the largest cost on the
    /// hot path before this (see docs/performance.md). Call once, first thing in `main`.
    /// Nothing in Gatehouse blocks a thread for long inside a task (stdio pipes are read by
    /// Foundation's dispatch sources, SQLite runs on NIO's thread pool), which is what this
    /// requires. `GATEHOUSE_NIO_EXECUTOR=0` keeps the default executor.
    @discardableResult
    public static func installEventLoopExecutor() -> Bool {
        NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
    }

    /// The number of event loop threads (default: one per core). Before anything uses them.
    public static func setEventLoopCount(_ count: Int) {
        NIOSingletons.groupLoopCountSuggestion = count
    }
}
