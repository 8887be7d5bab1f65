#!/bin/sh
# bench/rank_exp.sh - POST /v1/rank throughput with an experiment on and off (the issue's "within 5%").
# One server, the Adult Wide & Deep model (trained as bench/rank_adult.sh does unless SNAPSHOTS has
# one), an experiment "ab" whose single arm takes every user (so every request records an impression,
# event store fsync on); the same 100-candidate request without "experiment" (off) and with it (on),
# each request a new user_id, run alternately ROUNDS times with wrk (CONNS connections); prints the
# requests/s of each run, the server's CPU time per request (all its threads, the event store's writer
# included: the cost that does not depend on how the kernel spreads connections over HTTP threads) and
# the ratio of the medians. THREADS is http.threads (default 1: with 2 HTTP threads the 16 connections
# sometimes all land on one of them, which halves a run whatever the mode).
#   sh bench/rank_exp.sh                         (from the repository root; RECD_BIN=path overrides bin/recd)
#   SNAPSHOTS=DIR DUR=8 ROUNDS=3 CONNS=16 THREADS=1 sh bench/rank_exp.sh
set -eu
BIN=${RECD_BIN:-bin/recd}
DATA=${RECD_SHARED:-../shared}/data/uci-adult
DUR=${DUR:-8}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-16}
PORT=${PORT:-18938}
THREADS=${THREADS:-1}
command -v wrk >/dev/null || { echo "rank_exp.sh: wrk not installed (make deps)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/rank-exp-bench.XXXXXX)
SNAPSHOTS=${SNAPSHOTS:-$TMP/snaps}
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
if [ ! -d "$SNAPSHOTS/widedeep" ]; then
  "$BIN" train widedeep -c configs/widedeep_adult.json --train "$DATA/adult.data" --test "$DATA/adult.test" \
    --epochs 10 --eval_every 0 --out "$SNAPSHOTS" 2>/dev/null
fi
cat > "$TMP/recd.json" <<JSON
{"http":{"bind":"127.0.0.1","port":$PORT,"threads":$THREADS},"snapshots":{"root":"$SNAPSHOTS","models":["widedeep"]},
 "state":{"dir":"$TMP/state"},"log_level":"warn",
 "experiments":[{"name":"ab","salt":"bench","arms":[{"name":"all","model":"widedeep","share":1}]}]}
JSON
"$BIN" serve -c "$TMP/recd.json" 2>"$TMP/serve.log" &
PID=$!
i=0; until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do i=$((i+1)); [ $i -lt 100 ] || { cat "$TMP/serve.log"; exit 1; }; sleep 0.1; done
# the request of bench/rank_adult.sh without its opening brace and user_id: a person, 100 candidate jobs
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
}' > "$TMP/tail.json"
for mode in off on; do
  if [ $mode = on ]; then head='"experiment":"ab",'; else head=''; fi
  cat > "$TMP/$mode.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$TMP/tail.json", "r"); local tail = f:read("*a"); f:close()
local n = 0
local id = tostring(math.random(1, 1000000000))
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{$head"user_id":"u' .. id .. '-' .. n .. '",' .. tail)
end
LUA
done
printf '{"experiment":"ab","user_id":"x",%s' "$(cat "$TMP/tail.json")" > "$TMP/one.json"
curl -sf -XPOST "http://127.0.0.1:$PORT/v1/rank" -H 'Content-Type: application/json' --data-binary @"$TMP/one.json" \
  | grep -o '"experiment":"ab","arm":"all"' >/dev/null || { echo "rank_exp.sh: no arm in the answer" >&2; exit 1; }
: > "$TMP/off.txt"; : > "$TMP/on.txt"; : > "$TMP/off.cpu"; : > "$TMP/on.cpu"
ticks() { awk '{ print $14 + $15 }' /proc/$PID/stat; }
HZ=$(getconf CLK_TCK)
r=0
while [ $r -lt "$ROUNDS" ]; do
  for mode in off on; do
    t0=$(ticks)
    wrk -t2 -c"$CONNS" -d"${DUR}s" -s "$TMP/$mode.lua" "http://127.0.0.1:$PORT/v1/rank" > "$TMP/wrk.txt"
    t1=$(ticks)
    rps=$(awk '/Requests\/sec/ { print $2 }' "$TMP/wrk.txt")
    n=$(awk '/requests in/ { print $1 }' "$TMP/wrk.txt")
    cpu=$(echo "$t0 $t1 $n $HZ" | awk '{ printf "%.1f", ($2 - $1) / $4 / $3 * 1e6 }')
    echo "$rps" >> "$TMP/$mode.txt"; echo "$cpu" >> "$TMP/$mode.cpu"
    echo "rank100 experiment=$mode connections=$CONNS requests/s=$rps server_cpu_us_per_request=$cpu load=$(cut -d' ' -f1 /proc/loadavg)"
  done
  r=$((r+1))
done
med() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
off=$(med "$TMP/off.txt"); on=$(med "$TMP/on.txt"); coff=$(med "$TMP/off.cpu"); con=$(med "$TMP/on.cpu")
imp=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^recd_events_committed_total\{type="impression"\}/ { print $2 }')
echo "median requests/s: off=$off on=$on on/off=$(echo "$off $on" | awk '{ printf "%.3f", $2 / $1 }');" \
     "server cpu us/request: off=$coff on=$con on/off=$(echo "$coff $con" | awk '{ printf "%.3f", $2 / $1 }');" \
     "impressions_committed=${imp:-?}"
