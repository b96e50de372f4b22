#!/usr/bin/env bash
# Regenerates Sources/StarlingAPI from Protos/. Needs protoc (apt-get install protobuf-compiler);
# builds the plugins from tools/protoc-gen at the versions the package pins. The generated code is
# committed, so neither the build nor CI runs this.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=tools/protoc-gen
swift build --package-path "$tools" -c release --product protoc-gen-grpc-swift-2
swift build --package-path "$tools" -c release --product protoc-gen-swift
bin=$(swift build --package-path "$tools" -c release --show-bin-path)
rm -f Sources/StarlingAPI/*.pb.swift Sources/StarlingAPI/*.grpc.swift
protoc -I Protos \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift-2="$bin/protoc-gen-grpc-swift-2" \
  --swift_opt=Visibility=Public --swift_out=Sources/StarlingAPI \
  --grpc-swift-2_opt=Visibility=Public --grpc-swift-2_out=Sources/StarlingAPI \
  Protos/starling/v1/*.proto
# Flatten: one folder of generated files.
find Sources/StarlingAPI -mindepth 2 -name '*.swift' -exec mv {} Sources/StarlingAPI/ \;
find Sources/StarlingAPI -mindepth 1 -type d -empty -delete
echo "generated: $(ls Sources/StarlingAPI)"
