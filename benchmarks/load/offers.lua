-- wrk script: POST /offers for customer ids drawn from a file (one id per line), and a JSON summary.
-- Usage: wrk -s offers.lua URL -- ids_file
local ids = {}
local counter = 0

function init(args)
  local path = args[1]
  if path then
    for line in io.lines(path) do
      local id = tonumber(line)
      if id then ids[#ids + 1] = id end
    end
  end
  if #ids == 0 then ids = {1} end
end

request = function()
  counter = counter + 1
  local id = ids[(counter % #ids) + 1]
  local body = string.format('{"customer_id": %d, "n": 10}', id)
  return wrk.format("POST", "/offers", {["Content-Type"] = "application/json"}, body)
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, e.connect, e.read, e.write, e.status, e.timeout))
  -- the whole latency histogram (microseconds, count), so runs can be pooled exactly
  local parts = {}
  for i = 1, #latency do
    local value, count = latency(i)
    parts[#parts + 1] = string.format("%d,%d", value, count)
  end
  io.write("WRKHIST " .. table.concat(parts, ";") .. "\n")
end
