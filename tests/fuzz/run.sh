#!/usr/bin/env bash
# Runs the libFuzzer targets of `starling-fuzz` (docs/fuzzing.md), building it first if needed.
#
#   tests/fuzz/run.sh TARGET SECONDS   one target, e.g. tests/fuzz/run.sh resources 60
#   tests/fuzz/run.sh all SECONDS      every target in turn, SECONDS each
#   tests/fuzz/run.sh list             the target names
#   STARLING_FUZZ_JOBS=2 tests/fuzz/run.sh all 30   two targets at a time (one core each)
#
# Each target starts from its committed seeds (tests/fuzz/corpus/TARGET, read only) and keeps
# what it finds in .build-fuzz/fuzz/TARGET/corpus. Prints per target the executions, exec/s,
# coverage (libFuzzer's cov: and ft:) and crashes, then "fuzz: N passed, M failed"; exits
# non-zero on any crash, keeping the input in .build-fuzz/fuzz/TARGET/crashes/.
# STARLING_FUZZ_SEED fixes libFuzzer's random seed (default 0: a new one each run); the test suite
# uses 1, so that a run on a fresh machine explores what the last one did and a failure replays.
# STARLING_FUZZ_SCRATCH changes the build directory (default .build-fuzz, kept apart from .build
# because every module is compiled with -sanitize=fuzzer,address).
set -u
cd "$(dirname "$0")/../.."

usage() { echo "usage: tests/fuzz/run.sh TARGET|all SECONDS | list" >&2; exit 2; }
[ $# -ge 1 ] || usage
scratch=${STARLING_FUZZ_SCRATCH:-.build-fuzz}
bin=$scratch/debug/starling-fuzz

build() {
    local start=$SECONDS flags=(-Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld)
    # STARLING_FUZZ_SCOPE=starling: Package.swift instruments Starling's modules only.
    [ "${STARLING_FUZZ_SCOPE:-}" = starling ] && flags=()
    if ! STARLING_FUZZ=1 swift build -c debug --scratch-path "$scratch" --product starling-fuzz \
        "${flags[@]}" >"$scratch/build.log" 2>&1; then
        tail -40 "$scratch/build.log" >&2
        echo "fuzz: the build failed (log: $scratch/build.log)" >&2
        exit 1
    fi
    echo "fuzz: built $bin in $((SECONDS - start)) s"
}

mkdir -p "$scratch"
build
if [ "$1" = list ]; then "$bin" list; exit 0; fi
[ $# -eq 2 ] || usage
case $2 in ''|*[!0-9]*) usage ;; esac
seconds=$2
if [ "$1" = all ]; then targets=$("$bin" list); else targets=$1; fi

# One target; its summary line goes to $work/result, its status to $work/status.
run_one() {
    local target=$1 work=$scratch/fuzz/$1 tmp rc execs rate cov crash
    mkdir -p "$work/corpus" "$work/crashes"
    rm -f "$work/result" "$work/status"
    if [ ! -d "tests/fuzz/corpus/$target" ]; then
        echo "fuzz $target: unknown target (no tests/fuzz/corpus/$target)" >"$work/result"
        echo 1 >"$work/status"; return
    fi
    tmp=$(mktemp -d)   # the store target's SQLite file lives here
    # A unit that runs past 30 s fails (-timeout); a slower one under that is no finding: on a
    # loaded machine (CI builds meanwhile) one once took 12 s, against 0.3 s when replayed.
    SWIFT_BACKTRACE=enable=no TMPDIR=$tmp "$bin" "$target" -max_total_time="$seconds" -seed="${STARLING_FUZZ_SEED:-0}" -timeout=30 -report_slow_units=30 \
        -rss_limit_mb=3072 -detect_leaks=0 -print_final_stats=1 -artifact_prefix="$work/crashes/" \
        "$work/corpus" "tests/fuzz/corpus/$target" >"$work/log" 2>&1
    rc=$?
    rm -rf "$tmp"
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
    cov=$(grep -a -o 'cov: [0-9]* ft: [0-9]*' "$work/log" | tail -1)
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$work/log" | tail -1)
    if [ $rc -eq 0 ] && [ -z "$crash" ]; then
        echo "fuzz $target: ${seconds} s, ${execs:-?} executions (${rate:-?}/s), ${cov:-cov: ?}, crashes 0" >"$work/result"
        echo 0 >"$work/status"
    else
        {
            echo "fuzz $target: FAILED (exit $rc) after ${execs:-?} executions, ${cov:-cov: ?}, crashes $([ -n "$crash" ] && echo 1 || echo 0)"
            [ -n "$crash" ] && echo "  crash input: $crash (replay: SWIFT_BACKTRACE=enable=no $bin $target $crash)"
            grep -a -m1 -E 'fuzz check failed|Fatal error|ERROR: (AddressSanitizer|libFuzzer)' "$work/log" | sed 's/^/  /'
            echo "  log: $work/log"
        } >"$work/result"
        echo 1 >"$work/status"
    fi
}

# STARLING_FUZZ_JOBS targets run at once (default 1); each libFuzzer process uses one core.
jobs=${STARLING_FUZZ_JOBS:-1}
running=0
for target in $targets; do
    if [ "$running" -ge "$jobs" ]; then wait -n; running=$((running - 1)); fi
    run_one "$target" &
    running=$((running + 1))
done
wait

passed=0; failed=0
for target in $targets; do
    cat "$scratch/fuzz/$target/result"
    if [ "$(cat "$scratch/fuzz/$target/status")" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
