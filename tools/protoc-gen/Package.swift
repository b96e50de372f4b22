// swift-tools-version:6.1
// Builds the protoc plugins at exactly the versions the main package resolves.
// Used only by scripts/generate-protos.sh; the main package never builds it.
import PackageDescription

let package = Package(
    name: "protoc-gen",
    dependencies: [
        .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", exact: "2.4.1"),
    ]
)
