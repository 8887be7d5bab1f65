#!/bin/sh
# bench/rank_adult.sh - POST /v1/rank latency with the Adult Wide & Deep model: 100 candidates per
# request. Trains a model (10 epochs) unless SNAPSHOTS names a root that already has widedeep/, starts
# `recd serve` on a loopback port, then runs wrk with 1 connection (server time unloaded) and with 16
# connections (p99 under load). Server time = the /v1/rank latency histogram of /metrics (from the
# request's start to its answer, inside the server), mean over the run.
#   sh bench/rank_adult.sh          (from the repository root; RECD_BIN=path overrides bin/recd)
#   SNAPSHOTS=DIR DUR=8 THREADS=4 sh bench/rank_adult.sh   (reuse a trained root; run length; HTTP threads)
# The machine is shared: run it several times and take the median; the 16-connection p99 is mostly
# queueing (16 requests in flight on 2 cores, wrk included), so it follows the load average.
set -eu
BIN=${RECD_BIN:-bin/recd}
DATA=${RECD_SHARED:-../shared}/data/uci-adult
DUR=${DUR:-10}
PORT=${PORT:-18937}
THREADS=${THREADS:-0}   # http.threads of the server (0: one per core)
command -v wrk >/dev/null || { echo "rank_adult.sh: wrk not installed (make deps)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/wd-rank-bench.XXXXXX)
SNAPSHOTS=${SNAPSHOTS:-$TMP/snaps}
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
if [ ! -d "$SNAPSHOTS/widedeep" ]; then
  "$BIN" train widedeep -c configs/widedeep_adult.json --train "$DATA/adult.data" --test "$DATA/adult.test" \
    --epochs 10 --eval_every 0 --out "$SNAPSHOTS" 2>/dev/null
fi
cat > "$TMP/recd.json" <<JSON
{"http":{"bind":"127.0.0.1","port":$PORT,"threads":$THREADS},"snapshots":{"root":"$SNAPSHOTS","models":["widedeep"]},"log_level":"warn"}
JSON
"$BIN" serve -c "$TMP/recd.json" 2>"$TMP/serve.log" &
PID=$!
i=0; until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do i=$((i+1)); [ $i -lt 100 ] || { cat "$TMP/serve.log"; exit 1; }; sleep 0.1; done
# one request: a person as context, 100 candidate jobs (occupation x hours x workclass)
awk 'BEGIN {
  split("Tech-support Craft-repair Other-service Sales Exec-managerial Prof-specialty Handlers-cleaners Machine-op-inspct Adm-clerical Farming-fishing", occ, " ")
  split("Private Self-emp-not-inc Local-gov State-gov Federal-gov", wc, " ")
  printf "{\"user_id\":\"u1\",\"k\":10,\"context\":{\"age\":41,\"education\":\"Bachelors\",\"education_num\":13,"
  printf "\"marital_status\":\"Married-civ-spouse\",\"relationship\":\"Husband\",\"capital_gain\":0,\"capital_loss\":0},\"candidates\":["
  for (i = 0; i < 100; i++) {
    printf "%s{\"item_id\":\"job%d\",\"features\":{\"occupation\":\"%s\",\"hours_per_week\":%d,\"workclass\":\"%s\"}}",
      (i ? "," : ""), i, occ[i % 10 + 1], 20 + (i * 7) % 45, wc[int(i / 10) % 5 + 1]
  }
  printf "]}"
}' > "$TMP/body.json"
cat > "$TMP/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$TMP/body.json", "r"); wrk.body = f:read("*a"); f:close()
LUA
curl -sf -XPOST "http://127.0.0.1:$PORT/v1/rank" --data-binary @"$TMP/body.json" | head -c 200; echo
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m "{route=\"/v1/rank\"}" { print $2 }'; }
bucket() { curl -s "http://127.0.0.1:$PORT/metrics" | awk -v le="$1" '$1 == "recd_http_request_duration_seconds_bucket{route=\"/v1/rank\",le=\"" le "\"}" { print $2 }'; }
run() {
  s0=$(metric recd_http_request_duration_seconds_sum); c0=$(metric recd_http_request_duration_seconds_count)
  a0=$(bucket 0.0001); b0=$(bucket 0.00025)
  wrk -t"$1" -c"$2" -d"${DUR}s" --latency -s "$TMP/post.lua" "http://127.0.0.1:$PORT/v1/rank" > "$TMP/wrk.txt"
  s1=$(metric recd_http_request_duration_seconds_sum); c1=$(metric recd_http_request_duration_seconds_count)
  a1=$(bucket 0.0001); b1=$(bucket 0.00025)
  rps=$(awk '/Requests\/sec/ { print $2 }' "$TMP/wrk.txt")
  p50=$(awk '$1 == "50%" { print $2 }' "$TMP/wrk.txt"); p99=$(awk '$1 == "99%" { print $2 }' "$TMP/wrk.txt")
  echo "rank100 connections=$2 requests/s=$rps client_p50=$p50 client_p99=$p99 server_mean_us=$(echo "$s0 $s1 $c0 $c1" | awk '{ printf "%.1f", ($2 - $1) / ($4 - $3) * 1e6 }') server_under_100us=$(echo "$a0 $a1 $c0 $c1" | awk '{ printf "%.0f%%", ($2 - $1) / ($4 - $3) * 100 }') server_under_250us=$(echo "$b0 $b1 $c0 $c1" | awk '{ printf "%.0f%%", ($2 - $1) / ($4 - $3) * 100 }') load=$(cut -d' ' -f1 /proc/loadavg)"
}
run 1 1
run 2 16
