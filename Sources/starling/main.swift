import NIOCore
import NIOPosix
import StarlingCLI

#if canImport(Glibc)
import Glibc
#endif

// The data-plane commands (`proxy`, `run`) run on two event loop threads by default (one on a
// one-core machine), as Istio's sidecars default to two worker threads; STARLING_PROXY_THREADS=N
// gives it N. With one, the client side and the server side of a benchmark pair took turns:
// two loops let them overlap (1.4x the requests at the same CPU per request, docs/data-plane.md).
// Set before anything uses NIO's singleton group; the other commands keep NIO's default.
//
// Swift's global executor stays Swift's own. NIO can take it over, but only where it finds the
// runtime's hook with dlsym: in the statically linked release build the hook is a local symbol,
// so tests (dynamic builds) and deployed proxies ran tasks on different threads. The data path
// runs no task per request or connection: its channel handlers run on their connection's loop.
if let command = CommandLine.arguments.dropFirst().first, ["proxy", "run"].contains(command) {
    let threads =
        getenv("STARLING_PROXY_THREADS").flatMap { Int(String(cString: $0)) } ?? min(2, System.coreCount)
    NIOSingletons.groupLoopCountSuggestion = max(1, min(threads, 64))
}

await StarlingCommand.start()
