import NIOCore
import NIOPosix
import StarlingCLI

#if canImport(Glibc)
import Glibc
#endif

// The data-plane commands (`proxy`, `run`) run on one event loop thread by default, as a
// sidecar should (Linkerd's proxy defaults to one core too); STARLING_PROXY_THREADS=N gives it N.
// Their Swift tasks run on those threads as well: without that, every `await` on a channel hops
// between Swift's cooperative pool and the event loop that owns the socket. Both must be set
// before anything uses NIO's singleton group; the other commands keep NIO's and Swift's defaults.
if let command = CommandLine.arguments.dropFirst().first, ["proxy", "run"].contains(command) {
    let threads = getenv("STARLING_PROXY_THREADS").flatMap { Int(String(cString: $0)) } ?? 1
    NIOSingletons.groupLoopCountSuggestion = max(1, min(threads, 64))
    NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
}

await StarlingCommand.start()
