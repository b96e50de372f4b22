import Foundation

// `starling-fuzz TARGET [libFuzzer flags] [corpus dirs]`: one executable for every target (one link,
// one build), run through libFuzzer's driver. See docs/fuzzing.md and tests/fuzz/run.sh.

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// The target chosen on the command line; set once, before the driver starts.
nonisolated(unsafe) var selectedTarget: FuzzTarget?

/// libFuzzer's callback, exported under the name its runtime looks for.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    selectedTarget?.run(bytes)
    return 0
}

let arguments = CommandLine.arguments
if arguments.count == 2, arguments[1] == "list" {
    print(FuzzTarget.all.map(\.name).joined(separator: "\n"))
    exit(0)
}
guard arguments.count >= 2, let target = FuzzTarget.all.first(where: { $0.name == arguments[1] }) else {
    let names = FuzzTarget.all.map { "  \($0.name): \($0.summary)" }.joined(separator: "\n")
    FileHandle.standardError.write(Data("usage: starling-fuzz TARGET [libFuzzer flags] [corpus dirs]\ntargets:\n\(names)\n".utf8))
    exit(2)
}
selectedTarget = target

// libFuzzer reads argv after the program name; drop the target name. The array lives as long as
// the process (libFuzzer keeps pointers into it).
var argc = CommandLine.argc - 1
let argv = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: Int(argc) + 1)
argv[0] = CommandLine.unsafeArgv[0]
for i in 1..<Int(argc) { argv[i] = CommandLine.unsafeArgv[i + 1] }
argv[Int(argc)] = nil
var argvPointer = argv
exit(LLVMFuzzerRunDriver(&argc, &argvPointer, fuzzOne))
