-- wrk script for bench/compare.py: count answers whose body reports probe_success 1,
-- so a wrk run gives a success share as well as a request rate.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  failed = 0
end

function response(status, headers, body)
  if status == 200 and body:find("\nprobe_success 1\n", 1, true) then
    ok = ok + 1
  else
    failed = failed + 1
  end
end

function done(summary, latency, requests)
  local total_ok, total_failed = 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_failed = total_failed + thread:get("failed")
  end
  io.write(string.format("PROBE_SUCCESS ok=%d failed=%d\n", total_ok, total_failed))
end
