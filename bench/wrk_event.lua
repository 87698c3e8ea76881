-- POST one usage event per request, each with a fresh idempotency key.
-- args: api key, run prefix
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
function init(args)
  key = args[1]
  prefix = args[2] .. "-" .. id
  n = 0
  bad = 0
end
function request()
  n = n + 1
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
