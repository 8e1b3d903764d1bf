-- wrk script: POST the seed's example body to the create endpoint, rotating over the lines of
-- the file named by TENANTS_FILE: one "tenant_id realm token" per line. With one line per
-- tenant every request of a tenant carries the same token (as an integration does, so the
-- server's verified-token cache answers); a file of thousands of distinct tokens gives each
-- request a token the server has not verified recently (see create_bench.py).
-- Each of the WRK_THREADS threads walks its own share of the file (the whole file when it has
-- fewer lines than threads), from line WRK_START_<thread number> of its share; at the end the
-- script prints where each thread stopped (NEXT_START_<n>), so the next run carries on there.

local tenants = {}
local body = [[{"source": "api", "summary": "Hardware request - new laptop", "ticketBody": {"offerId": "23629", "ab13e5d1-9b9d-4c3e-8fc4-e86912c8cb53": "Need a replacement laptop", "7f111983-1013-41be-a056-989fff018bb5": "<p>Current laptop battery no longer holds charge.</p>", "711ea9e6-1b73-4070-9eb2-941803f7f5d4": "<2week"}, "attachments": {}, "ticketRelation": null}]]
local path = "/api/v2/ticketing/ticket/create/james/16910?type=template&module=ticketing"
local threads = {}
local first, share

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

function init(args)
  for line in io.lines(os.getenv("TENANTS_FILE")) do
    local id, realm, token = line:match("(%S+) (%S+) (%S+)")
    table.insert(tenants, {id = id, realm = realm, token = token})
  end
  errors = 0
  local thread_count = tonumber(os.getenv("WRK_THREADS") or "1")
  if #tenants < thread_count then
    first, share = 0, #tenants
  else
    share = math.floor(#tenants / thread_count)
    first = (thread_number - 1) * share
  end
  position = tonumber(os.getenv("WRK_START_" .. thread_number) or "0") % share
end

function request()
  local t = tenants[first + position + 1]
  position = (position + 1) % share
  local headers = {
    ["accept"] = "application/json",
    ["content-type"] = "application/json",
    ["authorization"] = "Bearer " .. t.token,
    ["x-tenantid"] = t.id,
    ["realmname"] = t.realm,
    ["issupportrequest"] = "false",
  }
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  if status ~= 200 then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("errors")
  end
  io.write(string.format("NON200 %d\n", total))
  io.write(string.format("P50 %.3f\n", latency:percentile(50) / 1000))
  io.write(string.format("P99 %.3f\n", latency:percentile(99) / 1000))
  io.write(string.format("REQUESTS %d\n", summary.requests))
  io.write(string.format("RPS %.1f\n", summary.requests / (summary.duration / 1e6)))
  for n, thread in ipairs(threads) do
    io.write(string.format("NEXT_START_%d %d\n", n, thread:get("position")))
  end
  io.write(string.format("SOCKET_ERRORS %d\n", summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout + summary.errors.status))
end
