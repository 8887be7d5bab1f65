#!/bin/sh
# bench/events_http.sh - the experiment figures over HTTP (issue "A/B experiments"), one server:
#   1. POST /v1/events with CONNS connections (16), batches of 1 (each a click with its own event_id
#      against a request of the experiment): acknowledged events/s, wrk's p50/p99 and the server's CPU
#      time per event, ROUNDS runs and their medians. Every 200 is after the commit (fdatasync unless
#      EVENTS_SYNC=false). Target: >= 10,000 events/s, p99 < 20 ms.
#   2. POST /v1/rank (the 100-candidate Adult request of bench/rank_adult.sh, k 10) with CONNS
#      connections, each request a new user_id, without an experiment ("model":"widedeep", off) and in
#      the experiment (on: assignment, answer fields, the impression with its 10 CSV rows logged and
#      committed), alternated ROUNDS times; prints each run's requests/s and the server's CPU time per
#      request (all its threads, the event store's writer included: the cost that does not depend on how
#      the kernel spreads connections over HTTP threads), then the medians, the ratio of the medians and
#      the median of the pair ratios. Target: on/off >= 0.95.
#   sh bench/events_http.sh               (from the repository root; RECD_BIN=path overrides bin/recd)
#   DUR=8 ROUNDS=5 CONNS=16 THREADS=1 SNAPSHOTS=DIR EVENTS_SYNC=true ONLY=events|rank sh bench/events_http.sh
# THREADS is http.threads (default 1: with 2 HTTP threads the 16 connections sometimes all land on one
# of them, which halves a run whatever the mode; wrk takes the other core of a 2-core machine).
# Needs wrk, curl and ../shared/data/uci-adult (RECD_SHARED overrides ../shared) unless SNAPSHOTS has a
# widedeep model. The machine is shared: medians of alternated runs are the figures, not one run's rate.
set -eu
# shellcheck source=bench/lib_serve.sh
. "$(dirname "$0")/lib_serve.sh"
# shellcheck source=bench/lib_adult.sh
. "$(dirname "$0")/lib_adult.sh"
DUR=${DUR:-8}
ROUNDS=${ROUNDS:-5}
CONNS=${CONNS:-16}
THREADS=${THREADS:-1}
PORT=${PORT:-18947}
EVENTS_SYNC=${EVENTS_SYNC:-true}
ONLY=${ONLY:-}
command -v wrk >/dev/null || { echo "events_http.sh: wrk not installed (make deps)" >&2; exit 1; }
serve_tmp events-http
SNAPSHOTS=${SNAPSHOTS:-$TMP/snaps}
adult_widedeep "$SNAPSHOTS"
cat > "$TMP/recd.json" <<JSON
{"http":{"bind":"127.0.0.1","port":$PORT,"threads":$THREADS},"snapshots":{"root":"$SNAPSHOTS","models":["widedeep"]},
 "state":{"dir":"$TMP/state"},"events":{"sync":$EVENTS_SYNC},
 "experiments":[{"name":"bench","salt":"bench-1","unit":"user_id",
   "arms":[{"name":"a","model":"widedeep","share":0.5},{"name":"b","model":"widedeep","share":0.5}]}],
 "log_level":"warn"}
JSON
serve_start "$TMP/serve.log" -c "$TMP/recd.json"

# The rank request of bench/rank_adult.sh (bench/lib_adult.sh) without its opening brace: each request
# adds the user and experiment/model.
adult_rank_body > "$TMP/rest.json"
ANS=$( { printf '{"experiment":"bench","user_id":"u0",'; cat "$TMP/rest.json"; } |
  curl -sf -XPOST -H 'Content-Type: application/json' --data-binary @- "http://127.0.0.1:$PORT/v1/rank")
echo "$ANS" | grep -q '"experiment":"bench","arm":"[ab]"' ||
  { echo "events_http.sh: no experiment and arm in the /v1/rank answer" >&2; cat "$TMP/serve.log" >&2; exit 1; }
RID=$(echo "$ANS" | sed -n 's/.*"request_id":"\([^"]*\)".*/\1/p')
[ -n "$RID" ] || { echo "events_http.sh: no request_id from /v1/rank" >&2; cat "$TMP/serve.log" >&2; exit 1; }

# wrk scripts: a counter per thread (and a random run prefix) makes every event_id and user_id distinct;
# each script is ids.lua followed by its own lines.
cat > "$TMP/ids.lua" <<LUA
local n = 0
local counter = 0
local run = tostring(math.random(1, 1000000000))
function setup(thread) counter = counter + 1; thread:set("tid", counter) end
LUA
cat "$TMP/ids.lua" - > "$TMP/events.lua" <<LUA
request = function()
  n = n + 1
  return wrk.format("POST", "/v1/events", {["Content-Type"] = "application/json"},
    '{"request_id":"$RID","type":"click","item_id":"job1","event_id":"' .. run .. "-" .. tid .. "-" .. n .. '"}')
end
response = function(status) if status ~= 200 then io.stderr:write("status " .. status .. "\n") end end
LUA
for mode in off on; do
  if [ $mode = on ]; then head='"experiment":"bench",'; else head='"model":"widedeep",'; fi
  cat "$TMP/ids.lua" - > "$TMP/rank_$mode.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$TMP/rest.json", "r"); local rest = f:read("*a"); f:close()
request = function()
  n = n + 1
  return wrk.format(nil, "/v1/rank", nil, '{$head"user_id":"u' .. run .. '-' .. tid .. '-' .. n .. '",' .. rest)
end
LUA
done

HZ=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 }' "/proc/$PID/stat"; }
# run NAME LUA: one wrk run; prints "rps p50 p99 cpu_us_per_request errors"
run() {
  t0=$(ticks)
  wrk -t2 -c"$CONNS" -d"${DUR}s" --latency -s "$2" "http://127.0.0.1:$PORT" > "$TMP/wrk.txt" 2>"$TMP/wrk.err"
  t1=$(ticks)
  awk -v t0="$t0" -v t1="$t1" -v hz="$HZ" -v errs="$(wc -l < "$TMP/wrk.err")" '
    /Requests\/sec/ { r = $2 } /requests in/ { n = $1 } $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
    / Non-2xx/ { bad = $NF }
    END { printf "%s %s %s %.1f %d\n", r, p50, p99, n ? (t1 - t0) / hz / n * 1e6 : 0, (errs > bad ? errs : bad) }' "$TMP/wrk.txt"
}
# median of column $1 of file $2 (even count: the mean of the middle two)
med() { awk -v c="$1" '{ print $c }' "$2" | sort -n | awk '{ v[NR] = $1 }
  END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# wrk latency "1.23ms"/"850.00us"/"1.02s" -> ms
to_ms() { awk '{ v = $1 + 0; if ($1 ~ /us$/) v /= 1000; else if ($1 ~ /[0-9]s$/ && $1 !~ /ms$/) v *= 1000; printf "%.3f\n", v }'; }

if [ "$ONLY" != rank ]; then
  echo "== POST /v1/events: $CONNS connections, batches of 1, events.sync $EVENTS_SYNC, http.threads $THREADS, ${DUR}s x $ROUNDS"
  : > "$TMP/ev.txt"
  for r in $(seq 1 "$ROUNDS"); do
    set -- $(run events "$TMP/events.lua")
    p50=$(echo "$2" | to_ms); p99=$(echo "$3" | to_ms)
    echo "$1 $p50 $p99 $4" >> "$TMP/ev.txt"
    echo "events/s=$1 p50_ms=$p50 p99_ms=$p99 server_cpu_us_per_event=$4 errors=$5 load=$(cut -d' ' -f1 /proc/loadavg)"
  done
  echo "median events/s=$(med 1 "$TMP/ev.txt") p50_ms=$(med 2 "$TMP/ev.txt") p99_ms=$(med 3 "$TMP/ev.txt")" \
       "server_cpu_us_per_event=$(med 4 "$TMP/ev.txt")"
fi

if [ "$ONLY" != events ]; then
  echo "== POST /v1/rank: $CONNS connections, 100 candidates, k 10, off (\"model\") vs on (\"experiment\"), http.threads $THREADS, alternated ${DUR}s x $ROUNDS"
  : > "$TMP/off.txt"; : > "$TMP/on.txt"; : > "$TMP/pairs.txt"
  for r in $(seq 1 "$ROUNDS"); do
    for mode in off on; do
      set -- $(run "$mode" "$TMP/rank_$mode.lua")
      echo "$1 $4" >> "$TMP/$mode.txt"
      echo "rank experiment=$mode requests/s=$1 server_cpu_us_per_request=$4 errors=$5 load=$(cut -d' ' -f1 /proc/loadavg)"
    done
    paste "$TMP/off.txt" "$TMP/on.txt" | tail -n 1 | awk '{ printf "%.4f %.4f\n", $3 / $1, $4 / $2 }' >> "$TMP/pairs.txt"
  done
  off=$(med 1 "$TMP/off.txt"); on=$(med 1 "$TMP/on.txt"); coff=$(med 2 "$TMP/off.txt"); con=$(med 2 "$TMP/on.txt")
  echo "median requests/s: off=$off on=$on on/off=$(echo "$off $on" | awk '{ printf "%.3f", $2 / $1 }')" \
       "pair-ratio median=$(med 1 "$TMP/pairs.txt");" \
       "server cpu us/request: off=$coff on=$con on/off=$(echo "$coff $con" | awk '{ printf "%.3f", $2 / $1 }')" \
       "pair-ratio median=$(med 2 "$TMP/pairs.txt")"
fi
curl -s "http://127.0.0.1:$PORT/metrics" |
  grep -E '^recd_events_(committed_total|refused_total|dropped_total|commits_total)' | grep -v ' 0$' || true
