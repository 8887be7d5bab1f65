#!/bin/sh
# bench/events_http.sh - the experiment figures over HTTP (issue "A/B experiments"):
#   1. POST /v1/events with 16 connections, batches of 1 (each a click with its own event_id against a
#      request of the experiment): acknowledged events/s and wrk's p50/p99. Every 200 is after the commit
#      (fdatasync unless EVENTS_SYNC=false).
#   2. POST /v1/rank (the 100-candidate Adult request of bench/rank_adult.sh) with 16 connections, with the
#      request in an experiment (a new user_id per request: assignment, answer fields, impression logged)
#      and without (the same model named by "model"), alternated ROUNDS times on one server; prints both
#      medians and the median of the pair ratios.
#   sh bench/events_http.sh               (from the repository root; RECD_BIN=path overrides bin/recd)
#   DUR=8 ROUNDS=5 SNAPSHOTS=DIR EVENTS_SYNC=true sh bench/events_http.sh
# Needs wrk, curl and ../shared/data/uci-adult (RECD_SHARED overrides ../shared) unless SNAPSHOTS has a
# widedeep model. The machine is shared: the ratio of alternated runs is the figure, not one run's rate.
set -eu
BIN=${RECD_BIN:-bin/recd}
DATA=${RECD_SHARED:-../shared}/data/uci-adult
DUR=${DUR:-8}
ROUNDS=${ROUNDS:-5}
PORT=${PORT:-18947}
EVENTS_SYNC=${EVENTS_SYNC:-true}
command -v wrk >/dev/null || { echo "events_http.sh: wrk not installed (make deps)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/events-http.XXXXXX)
SNAPSHOTS=${SNAPSHOTS:-$TMP/snaps}
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
if [ ! -d "$SNAPSHOTS/widedeep" ]; then
  "$BIN" train widedeep -c configs/widedeep_adult.json --train "$DATA/adult.data" --test "$DATA/adult.test" \
    --epochs 10 --eval_every 0 --out "$SNAPSHOTS" 2>/dev/null
fi
cat > "$TMP/recd.json" <<JSON
{"http":{"bind":"127.0.0.1","port":$PORT},"snapshots":{"root":"$SNAPSHOTS","models":["widedeep"]},
 "state":{"dir":"$TMP/state"},"events":{"sync":$EVENTS_SYNC},
 "experiments":[{"name":"bench","salt":"bench-1","unit":"user_id",
   "arms":[{"name":"a","model":"widedeep","share":0.5},{"name":"b","model":"widedeep","share":0.5}]}],
 "log_level":"warn"}
JSON
"$BIN" serve -c "$TMP/recd.json" 2>"$TMP/serve.log" &
PID=$!
i=0; until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do
  i=$((i+1)); [ $i -lt 200 ] || { cat "$TMP/serve.log" >&2; exit 1; }; sleep 0.1; done

# The rank request of bench/rank_adult.sh, as a body prefix: each script adds the user and experiment/model.
awk 'BEGIN {
  split("Tech-support Craft-repair Other-service Sales Exec-managerial Prof-specialty Handlers-cleaners Machine-op-inspct Adm-clerical Farming-fishing", occ, " ")
  split("Private Self-emp-not-inc Local-gov State-gov Federal-gov", wc, " ")
  printf "\"k\":10,\"context\":{\"age\":41,\"education\":\"Bachelors\",\"education_num\":13,"
  printf "\"marital_status\":\"Married-civ-spouse\",\"relationship\":\"Husband\",\"capital_gain\":0,\"capital_loss\":0},\"candidates\":["
  for (i = 0; i < 100; i++) {
    printf "%s{\"item_id\":\"job%d\",\"features\":{\"occupation\":\"%s\",\"hours_per_week\":%d,\"workclass\":\"%s\"}}",
      (i ? "," : ""), i, occ[i % 10 + 1], 20 + (i * 7) % 45, wc[int(i / 10) % 5 + 1]
  }
  printf "]}"
}' > "$TMP/rest.json"
RID=$( { printf '{"experiment":"bench","user_id":"u0",'; cat "$TMP/rest.json"; } |
  curl -sf -XPOST -H 'Content-Type: application/json' --data-binary @- "http://127.0.0.1:$PORT/v1/rank" |
  sed -n 's/.*"request_id":"\([^"]*\)".*/\1/p')
[ -n "$RID" ] || { echo "events_http.sh: no request_id from /v1/rank" >&2; cat "$TMP/serve.log" >&2; exit 1; }

# wrk scripts: a counter per thread makes every event_id and user_id distinct.
cat > "$TMP/events.lua" <<LUA
local n = 0
local counter = 0
function setup(thread) counter = counter + 1; thread:set("tid", counter) end
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"},
    '{"request_id":"$RID","type":"click","item_id":"job1","event_id":"' .. tid .. "-" .. n .. '"}')
end
response = function(status) if status ~= 200 then io.stderr:write("status " .. status .. "\n") end end
LUA
mk_rank_lua() { # $1: "exp" or "model"
  cat > "$TMP/rank_$1.lua" <<LUA
local n = 0
local rest = io.open("$TMP/rest.json", "r"):read("*a")
local mode = "$1"
request = function()
  n = n + 1
  local head
  if mode == "exp" then head = '{"experiment":"bench","user_id":"u' .. math.random(1, 1000000000) .. '",'
  else head = '{"model":"widedeep","user_id":"u' .. math.random(1, 1000000000) .. '",' end
  return wrk.format("POST", "/v1/rank", {["Content-Type"] = "application/json"}, head .. rest)
end
LUA
}
mk_rank_lua exp
mk_rank_lua model

echo "== POST /v1/events, 16 connections, batches of 1 (events.sync $EVENTS_SYNC), ${DUR}s x $ROUNDS"
for r in $(seq 1 "$ROUNDS"); do
  wrk -t2 -c16 -d"${DUR}s" --latency -s "$TMP/events.lua" "http://127.0.0.1:$PORT" > "$TMP/wrk.txt" 2>"$TMP/wrk.err"
  awk '/Requests\/sec/ { r = $2 } $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
       END { printf "events/s=%s p50=%s p99=%s\n", r, p50, p99 }' "$TMP/wrk.txt"
  sort "$TMP/wrk.err" | uniq -c | head -3
done | tee "$TMP/ev.txt"
awk -F'[= ]' '{ print $2 }' "$TMP/ev.txt" | sort -n | awk '{ v[NR] = $1 } END { printf "median events/s=%s\n", v[int((NR + 1) / 2)] }'

echo "== POST /v1/rank, 16 connections: in the experiment vs not, alternated ${DUR}s x $ROUNDS"
: > "$TMP/pairs.txt"
for r in $(seq 1 "$ROUNDS"); do
  wrk -t2 -c16 -d"${DUR}s" -s "$TMP/rank_model.lua" "http://127.0.0.1:$PORT" | awk '/Requests\/sec/ { print $2 }' > "$TMP/a"
  wrk -t2 -c16 -d"${DUR}s" -s "$TMP/rank_exp.lua" "http://127.0.0.1:$PORT" | awk '/Requests\/sec/ { print $2 }' > "$TMP/b"
  a=$(cat "$TMP/a"); b=$(cat "$TMP/b")
  echo "$a $b" | awk '{ printf "without=%s with=%s ratio=%.3f\n", $1, $2, $2 / $1 }' | tee -a "$TMP/pairs.txt"
done
awk '{ split($1, a, "="); split($2, b, "="); split($3, c, "="); x[NR] = a[2]; y[NR] = b[2]; z[NR] = c[2] }
  END { n = NR
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) { if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
      if (y[j] < y[i]) { t = y[i]; y[i] = y[j]; y[j] = t } if (z[j] < z[i]) { t = z[i]; z[i] = z[j]; z[j] = t } }
    m = int((n + 1) / 2); printf "median without=%s with=%s pair-ratio median=%.3f\n", x[m], y[m], z[m] }' "$TMP/pairs.txt"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E '^recd_events_(committed|refused|dropped|commits)' || true
