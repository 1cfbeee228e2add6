-- wrk script: POST a JSON body for N distinct machine ids, round robin, with a Bearer key.
--
--   wrk -tT -c16 -d10s -s bench/wrk_post.lua URL -- PATH N_MACHINES API_KEY ID_PREFIX BODY_TEMPLATE T
--
-- BODY_TEMPLATE is the JSON body with the placeholder __MACHINE_ID__ (the Python side builds it from
-- the same dicts as its fallback load generator, so both send the same bytes). Requests are built
-- once in init(): building them per request would make wrk, not the server, the bottleneck.
-- done() prints one JSON line (prefixed "WRK_RESULT ") that bench/_loadgen.py parses.

local thread_count = 0
local threads = {}

function setup(thread)
   thread:set("thread_index", thread_count)
   table.insert(threads, thread)
   thread_count = thread_count + 1
end

function init(args)
   local path, machines, api_key, id_prefix, template = args[1], tonumber(args[2]), args[3], args[4], args[5]
   local headers = {
      ["Authorization"] = "Bearer " .. api_key,
      ["Content-Type"] = "application/json",
   }
   -- Threads share the ids: thread i sends ids i, i+T, i+2T, ... so no two threads hit one row.
   local step = tonumber(args[6] or "1")
   requests = {}
   for i = thread_index, machines - 1, step do
      local machine_id = id_prefix .. string.format("%05d", i)
      -- A plain find/replace: gsub patterns would treat "%" or "-" in ids as magic.
      local at = template:find("__MACHINE_ID__", 1, true)
      local body = template:sub(1, at - 1) .. machine_id .. template:sub(at + #"__MACHINE_ID__")
      table.insert(requests, wrk.format("POST", path, headers, body))
   end
   next_request = 0
end

function request()
   next_request = next_request % #requests + 1
   return requests[next_request]
end

function done(summary, latency, per_thread)
   local e = summary.errors
   io.write(string.format(
      'WRK_RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
      '"max_us": %d, "mean_us": %.1f, "errors_connect": %d, "errors_read": %d, "errors_write": %d, ' ..
      '"errors_status": %d, "errors_timeout": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
