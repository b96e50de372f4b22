import NIOCore
import NIOPosix
import StarlingCLI

// The data-plane commands run their Swift tasks on NIO's event loop threads: without this,
// every request hops between Swift's cooperative pool and the event loop that owns its sockets
// (two thread switches per await on a channel). Done before any task starts, for the commands
// that host a proxy only; the others keep Swift's default executor.
if let command = CommandLine.arguments.dropFirst().first, ["proxy", "run"].contains(command) {
    NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
}

await StarlingCommand.start()
