// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "ShardVault",
    products: [
        .executable(name: "shardvault", targets: ["shardvault"]),
        .library(name: "VaultCore", targets: ["VaultCore"]),
        .library(name: "VaultCrypto", targets: ["VaultCrypto"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(name: "CShims"),
        .target(name: "VaultCrypto", dependencies: ["COpenSSL"], swiftSettings: strict),
        .target(name: "VaultCore", dependencies: ["VaultCrypto", "CShims", .product(name: "Yams", package: "Yams")], swiftSettings: strict),
        .executableTarget(
            name: "shardvault",
            dependencies: [
                "VaultCore", "VaultCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "shardvault-bench",
            dependencies: ["VaultCore", "VaultCrypto"],
            path: "Benchmarks/SealBench",
            swiftSettings: strict
        ),
        .testTarget(name: "VaultCryptoTests", dependencies: ["VaultCrypto", "VaultCore"], swiftSettings: strict),
        .testTarget(name: "VaultCoreTests", dependencies: ["VaultCore", "VaultCrypto"], swiftSettings: strict),
        .testTarget(name: "ShardVaultCLITests", dependencies: ["VaultCore"], swiftSettings: strict),
    ],
    swiftLanguageModes: [.v6]
)
