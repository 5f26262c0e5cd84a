// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "Alloy",
    products: [
        .executable(name: "alloy", targets: ["alloy"]),
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "Formats", targets: ["Formats"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
    ],
    targets: [
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .target(name: "CKernels"),
        .target(name: "Tensors", dependencies: ["COpenBLAS", "CKernels"]),
        .target(name: "Formats", dependencies: [
            "Tensors", "CKernels", "CZlib", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "Encoder", dependencies: ["Tensors", "Formats", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Merging", dependencies: ["Tensors", "Formats", "CKernels", .product(name: "Yams", package: "Yams")]),
        .target(name: "Store", dependencies: [
            "Tensors", "Formats", "Encoder", "Merging", .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "Evaluation", dependencies: ["Encoder", "Formats", "Tensors"]),
        .target(name: "Composition", dependencies: ["Tensors", "Formats", "Encoder", "Evaluation", "Merging", "Store"]),
        .target(name: "Serving", dependencies: [
            "Tensors", "Formats", "Encoder", "Store",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ]),
        .target(name: "AlloyCLI", dependencies: [
            "Tensors", "Formats", "Encoder", "Evaluation", "Merging", "Store", "Composition", "Serving",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "alloy", dependencies: ["AlloyCLI", "Tensors"]),
        .executableTarget(name: "alloy-bench", dependencies: ["Tensors", "Formats", "Encoder"]),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "Formats"]),
        .testTarget(name: "EncoderTests", dependencies: ["Encoder", "Formats", "Tensors"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation"], exclude: ["Fixtures"]),
        .testTarget(name: "MergingTests", dependencies: ["Merging", "Formats", "Tensors", "CKernels"], exclude: ["Fixtures"]),
        .testTarget(name: "StoreTests", dependencies: ["Store", "Encoder", "Formats", "Tensors"], exclude: ["Fixtures"]),
        .testTarget(name: "alloyTests", dependencies: [
            "AlloyCLI", "Store", "Formats", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], exclude: ["Golden"]),
        .testTarget(name: "CompositionTests", dependencies: ["Composition", "Encoder", "Evaluation"]),
        .testTarget(name: "ServingTests", dependencies: [
            "Serving", "Encoder", "Formats", "Tensors", "Store",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "Tensors"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "FuzzTests", dependencies: ["Formats", "Encoder", "Evaluation", "Merging", "Tensors"],
                    exclude: ["Seeds", "Regressions"]),
    ],
    swiftLanguageModes: [.v6]
)
