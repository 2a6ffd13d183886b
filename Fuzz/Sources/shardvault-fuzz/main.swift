// One libFuzzer binary for every parser: SHARDVAULT_FUZZ_TARGET names the one to run
// (VaultCore's FuzzTargets.names). Built with -sanitize=fuzzer (scripts/fuzz.sh), so
// libFuzzer drives `LLVMFuzzerTestOneInput` through `LLVMFuzzerRunDriver`.
import Foundation
import VaultCore

let target: String = ProcessInfo.processInfo.environment["SHARDVAULT_FUZZ_TARGET"] ?? ""

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    FuzzTargets.run(target, UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
               _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

guard FuzzTargets.names.contains(target) else {
    FileHandle.standardError.write(Data("set SHARDVAULT_FUZZ_TARGET to one of: \(FuzzTargets.names.joined(separator: ", "))\n".utf8))
    exit(64)
}
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(runDriver(&argc, &argv, { fuzzOne($0, $1) }))
