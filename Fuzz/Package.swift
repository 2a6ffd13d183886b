// swift-tools-version:6.0
// libFuzzer harnesses for every parser of untrusted input. Built apart from the main
// package, instrumented: scripts/fuzz.sh builds and runs them.
import PackageDescription

let package = Package(
    name: "ShardVaultFuzz",
    dependencies: [.package(name: "ShardVault", path: "..")],
    targets: [
        .executableTarget(name: "shardvault-fuzz", dependencies: [.product(name: "VaultCore", package: "ShardVault")]),
    ],
    swiftLanguageModes: [.v6]
)
