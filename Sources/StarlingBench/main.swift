// `starling-bench`: control-plane benchmarks that print their figures (see bench/control-plane.sh).
await BenchCommand.start()
