-- wrk script for bench/compare (clients.run_wrk): spread the requests over distinct targets,
-- and count the answers whose body reports probe_success 1, so that a wrk run gives a
-- success share as well as a request rate.
-- Arguments after `--`: a path with {target} in it, then the targets ("host:port").
local threads = {}
local counter = 0

function setup(thread)
  thread:set("offset", counter)  -- threads start at different targets
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  ok = 0
  failed = 0
  requests = {}
  for i = 2, #args do
    local path = args[1]:gsub("{target}", args[i])
    requests[#requests + 1] = wrk.format(nil, path)
  end
  next_request = offset or 0
end

function request()
  next_request = next_request % #requests + 1
  return requests[next_request]
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
