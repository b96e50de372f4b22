# Shared by the benchmark scripts (sourced, not run). Expects `pids` (an array of the processes
# a script started) and defines the helpers both scripts use.

fail() { echo "benchmark failed: $*" >&2; exit 2; }

# release_build PRODUCT...: the build the benchmarks measure, the one users deploy
# (scripts/release-build.sh: release, Swift runtime linked in). Expects `root` (the checkout).
release_build() {
  "$root/scripts/release-build.sh" "$@" || fail "building $*"
}

# stop_pids: SIGTERM every process in `pids`, up to 6 s to exit, then SIGKILL.
stop_pids() {
  local p alive
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for _ in $(seq 20); do
    alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break; sleep 0.3
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
}

# median of the numeric arguments; empty when none
median() { printf '%s\n' "$@" | grep -E '^-?[0-9.]+$' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# wait_for DESC SECONDS CMD...: CMD succeeds within SECONDS, or the benchmark fails
wait_for() {
  local d=$1 t=$2; shift 2; local end=$((SECONDS + t))
  until "$@" >/dev/null 2>&1; do [ $SECONDS -lt $end ] || fail "$d (not within ${t}s)"; sleep 0.3; done
}

# free_address HOST PORT: nothing accepts connections there
free_address() { ! (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# rss_mb / hwm_mb / anon_mb PID: resident set, its peak, and its private (anonymous) part, in MB
# (file-backed pages — the binary and libraries — are shared by every process that maps them)
rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
hwm_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
anon_mb() { awk '/^RssAnon:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
