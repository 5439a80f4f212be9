// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "medic-edge",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "medic-edge", targets: ["medic-edge"]),
        .executable(name: "medic-edge-lab", targets: ["medic-edge-lab"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // C libraries, through pkg-config.
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto",
                       providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl",
                       providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),

        // Pure domain: config, payload rules, check-in choice, alerts, occupancy, ids, pt-BR words.
        .target(name: "EdgeCore", dependencies: [
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Yams", package: "Yams"),
        ]),
        // The SQLite store (GRDB): schema, migrations, write paths.
        .target(name: "EdgeStore", dependencies: [
            "EdgeCore",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "GRDBSQLite", package: "GRDB.swift"),
        ]),
        // The small Swift owner of a libmosquitto client.
        .target(name: "EdgeMQTT", dependencies: [
            "CMosquitto",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The small Swift owner of libcurl easy handles (uplink, roster, tests).
        .target(name: "EdgeHTTPClient", dependencies: ["CCurl"]),
        // The daemon and the operator commands: services, ingest pipeline, uplink, roster, HTTP, CLI.
        // Nothing of the lab (docs/modules.md; ModuleRulesTests checks it).
        .target(name: "MedicEdge", dependencies: [
            "EdgeCore", "EdgeStore", "EdgeMQTT", "EdgeHTTPClient", "CLibCrypto",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTLS", package: "hummingbird"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], resources: [
            // The console's stylesheet and scripts, real files compiled into the binary.
            .embedInCode("Console/Assets/console.css"),
            .embedInCode("Console/Assets/console.js"),
            .embedInCode("Console/Assets/login.js"),
            .embedInCode("Console/Assets/coldchain.js"),
        ]),
        // The cloud stub: Inngest Event API + Directus REST with fault injection.
        .target(name: "CloudStub", dependencies: [
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
        .executableTarget(name: "medic-edge", dependencies: ["MedicEdge"]),

        // The lab: device simulators, one file per device type beside its profile in devices/<type>/.
        .target(name: "EdgeSimulators", dependencies: [
            "EdgeCore", "EdgeMQTT",
            .product(name: "Logging", package: "swift-log"),
        ], path: "devices", exclude: [
            // The device profiles themselves (docs, schemas, examples: devices/README.md).
            "ack.schema.json", "check_examples.py", "device_status.schema.json", "edge_status.schema.json", "examples.json",
            "checkin_kiosk/README.md", "checkin_kiosk/examples", "checkin_kiosk/result.schema.json", "checkin_kiosk/schema.json",
            "device_status/README.md", "device_status/examples",
            "environment/README.md", "environment/examples", "environment/schema.json",
            "presence_sensor/README.md", "presence_sensor/examples", "presence_sensor/schema.json",
            "wearable_gateway/README.md", "wearable_gateway/examples", "wearable_gateway/schema.json",
        ]),
        // The lab: test harness (real mosquitto, the cloud stub, the daemon as a subprocess, a clinic day).
        .target(name: "EdgeTestSupport", dependencies: [
            "EdgeMQTT", "EdgeHTTPClient", "CloudStub", "EdgeCore",
        ]),
        // The lab's commands: demo, simulate, bench, cloud-stub (the daemon binary hands them to medic-edge-lab).
        .target(name: "EdgeLab", dependencies: [
            "EdgeCore", "EdgeStore", "EdgeMQTT", "EdgeHTTPClient", "CloudStub", "EdgeTestSupport", "EdgeSimulators",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "medic-edge-lab", dependencies: ["EdgeLab"]),
        .testTarget(name: "EdgeCoreTests", dependencies: ["EdgeCore", "EdgeStore", "EdgeTestSupport", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "CloudStubTests", dependencies: ["CloudStub", "EdgeHTTPClient", "EdgeTestSupport"]),
        .testTarget(name: "IntegrationTests", dependencies: [
            "EdgeTestSupport", "EdgeSimulators", "EdgeCore", "EdgeMQTT", "EdgeHTTPClient", "CloudStub", "MedicEdge",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
    ]
)
