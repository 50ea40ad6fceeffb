-- Shared by every benchmark script: counts responses per status code in each wrk thread and,
-- when the run ends, prints one machine-readable summary for bench/run.py:
--   BENCH requests=.. duration_us=.. connect=.. read=.. write=.. timeout=.. p50_us=.. p99_us=..
--   BENCH_STATUS <code> <count>     (one line per status code seen)
--   BENCH_SAMPLE <code> <body>      (the first body of each status >= 300, one line, cut short)
-- A script loads it with dofile() before defining its own init() and request().

local threads = {}
local next_id = 0

function setup(thread)
   next_id = next_id + 1
   thread:set("id", next_id)
   table.insert(threads, thread)
end

codes = {}
samples = {}

function response(status, headers, body)
   codes[status] = (codes[status] or 0) + 1
   if status >= 300 and samples[status] == nil then
      samples[status] = (body or ""):gsub("[\r\n]", " "):sub(1, 300)
   end
end

function done(summary, latency, requests)
   local merged, sampled = {}, {}
   for _, thread in ipairs(threads) do
      for code, count in pairs(thread:get("codes")) do
         merged[code] = (merged[code] or 0) + count
      end
      for code, body in pairs(thread:get("samples")) do
         sampled[code] = sampled[code] or body
      end
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d timeout=%d "
         .. "status_errors=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f\n",
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
      e.timeout, e.status, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, latency.mean))
   for code, count in pairs(merged) do
      io.write(string.format("BENCH_STATUS %d %d\n", code, count))
   end
   for code, body in pairs(sampled) do
      io.write(string.format("BENCH_SAMPLE %d %s\n", code, body))
   end
end
