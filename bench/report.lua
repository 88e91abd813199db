-- wrk script for bench/serve.py: asks on purpose, reports one JSON line.
--
-- Every request carries the guard header, so tokend answers 200 with the
-- token (the minimal application ignores it). At the end wrk calls done(),
-- which prints what bench/serve.py reads: requests, seconds, errors and
-- latency percentiles in microseconds.

wrk.headers["Tokend-Request"] = "1"

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.6f, "non_2xx": %d, ' ..
    '"socket_errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests,
    summary.duration / 1e6,
    errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50),
    latency:percentile(99)
  ))
end
