-- wrk script for bench/proxy-pair.sh.
--   wrk ... -s wrk.lua URL                      as fast as possible (closed loop)
--   wrk -tT ... -s wrk.lua URL -- rate R T      paced: R requests/s in all, each wrk thread
--                                               sending at R/threads on a fixed schedule
-- Prints one line at the end, for the script to parse:
--   result requests N status_errors N read_errors N timeouts N connect_errors N write_errors N p50_us N p99_us N p999_us N max_us N
-- (read_errors counts connections the far side closed: wrk reconnects and carries on.)
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } starling_timespec;
int clock_gettime(int clock, starling_timespec *tp);
]]
local ts = ffi.new("starling_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local interval = nil -- ms between this thread's requests (nil: no pacing)
local nextt = nil
function init(args)
  if args[1] == "rate" then
    local rate, n = tonumber(args[2]), tonumber(args[3])
    interval = 1000 * n / rate
  end
end

function delay()
  if not interval then return 0 end
  local t = now_ms()
  if not nextt then nextt = t + math.random() * interval end
  nextt = nextt + interval
  local d = nextt - t
  if d < 0 then d = 0 end
  return d
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "result requests %d status_errors %d read_errors %d timeouts %d connect_errors %d write_errors %d p50_us %d p99_us %d p999_us %d max_us %d\n",
    summary.requests, e.status, e.read, e.timeout, e.connect, e.write,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max))
end
