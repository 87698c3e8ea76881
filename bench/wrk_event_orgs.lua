-- POST one usage event per request, each request for the next of N organizations
-- (one API key each), each with a fresh idempotency key.
-- args: run prefix, key1, key2, ...
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
function init(args)
  prefix = args[1] .. "-" .. id
  keys = {}
  for i = 2, #args do keys[#keys + 1] = args[i] end
  n = 0
  bad = 0
end
function request()
  n = n + 1
  local key = keys[(n + id) % #keys + 1]
  local body = '{"idempotency_key":"' .. prefix .. "-" .. n ..
    '","meter":"ai.output_tokens","model":"gpt-5-mini","quantity":1000,"workflow_run_id":"bench"}'
  return wrk.format("POST", "/api/v1/usage/events",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
end
function response(status, headers, body)
  if status ~= 201 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write(string.format("unexpected_status: %d\n", total))
end
