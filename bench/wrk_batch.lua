-- POST a batch of 1,000 usage events per request, each with a fresh key.
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
  local events = {}
  for i = 1, 1000 do
    events[i] = '{"idempotency_key":"' .. prefix .. "-" .. n .. "-" .. i ..
      '","meter":"ai.output_tokens","model":"gpt-5-mini","quantity":1000,"workflow_run_id":"bench-' .. n .. '"}'
  end
  local body = '{"events":[' .. table.concat(events, ",") .. ']}'
  return wrk.format("POST", "/api/v1/usage/events/batch",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"refused":0', 1, true) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write(string.format("unexpected_status: %d\n", total))
end
