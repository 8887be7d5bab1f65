-- bench/ratings.lua - wrk script for the rating routes (see bench/serve_ratings.sh).
-- Environment: USERS (file, one known user id per line), ITEMS (file, one item id per line), MODE
-- (recommend|ratings), K (recommend: k, default 20), NITEMS (ratings: ids per request, default 100), SEED.
--   MODE=recommend  GET /v1/users/<random user>/recommendations?k=K
--   MODE=ratings    POST /v1/ratings {"user_id":<random user>,"item_ids":[NITEMS random items]}
-- Requests are made in init (2,000 per thread, from a seeded generator), then replayed in a loop.
-- done() prints one line:  requests/s=N p50_ms=X p90_ms=Y p99_ms=Z   (request and error counts on stderr)
local reqs = {}
local n, i = 0, 0
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end

local function lines(path)
  local t = {}
  for line in io.lines(path) do
    if line ~= "" then t[#t + 1] = line end
  end
  return t
end

function init(args)
  local users = lines(os.getenv("USERS"))
  local mode = os.getenv("MODE") or "recommend"
  local k = os.getenv("K") or "20"
  local nitems = tonumber(os.getenv("NITEMS") or "100")
  math.randomseed(tonumber(os.getenv("SEED") or "1") + (thread_id or 0))
  local items = mode == "ratings" and lines(os.getenv("ITEMS")) or {}
  for r = 1, 2000 do
    local u = users[math.random(#users)]
    if mode == "ratings" then
      local ids = {}
      for j = 1, nitems do ids[j] = '"' .. items[math.random(#items)] .. '"' end
      local body = '{"user_id":"' .. u .. '","item_ids":[' .. table.concat(ids, ",") .. ']}'
      reqs[r] = wrk.format("POST", "/v1/ratings", {["Content-Type"] = "application/json"}, body)
    else
      reqs[r] = wrk.format("GET", "/v1/users/" .. u .. "/recommendations?k=" .. k)
    end
    n = r
  end
end

function request()
  i = i + 1
  if i > n then i = 1 end
  return reqs[i]
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
                 summary.errors.status + summary.errors.timeout
  io.write(string.format("requests/s=%.0f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000))
  io.stderr:write(string.format("  (%d requests in %.1f s, %d errors: connect %d read %d write %d status %d timeout %d)\n",
    summary.requests, secs, errors, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
