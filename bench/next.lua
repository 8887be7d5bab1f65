-- bench/next.lua - wrk script for POST /v1/next with real session clicks (see bench/serve_next.sh).
-- The file named by the environment variable CLICKS holds one click per line: "session_id<TAB>item_id",
-- sessions in time order. Each wrk thread replays the clicks in order as stateful requests
-- {"session_id":"t<thread>-<id>","item_id":"<item>","k":20}; MODE=stateless sends instead the session's
-- history so far (at most 20 clicks) as {"items":[...],"k":20}. done() prints one line:
--   requests/s=N p50_ms=X p90_ms=Y p99_ms=Z      (and the request and error counts on stderr)
local reqs = {}
local n, i = 0, 0
local thread_id = 0
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end

function init(args)
  local path = os.getenv("CLICKS")
  local mode = os.getenv("MODE") or "stateful"
  local k = os.getenv("K") or "20"
  local hist = {}
  local prev = nil
  for line in io.lines(path) do
    local sid, item = line:match("^([^\t]+)\t([^\t]+)")
    if sid then
      local body
      if mode == "stateless" then
        if sid ~= prev then hist = {} end
        hist[#hist + 1] = '"' .. item .. '"'
        if #hist > 20 then table.remove(hist, 1) end
        body = '{"items":[' .. table.concat(hist, ",") .. '],"k":' .. k .. '}'
      else
        body = '{"session_id":"t' .. thread_id .. '-' .. sid .. '","item_id":"' .. item .. '","k":' .. k .. '}'
      end
      prev = sid
      n = n + 1
      reqs[n] = wrk.format("POST", "/v1/next", {["Content-Type"] = "application/json"}, body)
    end
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
