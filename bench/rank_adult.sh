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
# shellcheck source=bench/lib_serve.sh
. "$(dirname "$0")/lib_serve.sh"
# shellcheck source=bench/lib_adult.sh
. "$(dirname "$0")/lib_adult.sh"
DUR=${DUR:-10}
PORT=${PORT:-18937}
THREADS=${THREADS:-0}   # http.threads of the server (0: one per core)
command -v wrk >/dev/null || { echo "rank_adult.sh: wrk not installed (make deps)" >&2; exit 1; }
serve_tmp wd-rank-bench
SNAPSHOTS=${SNAPSHOTS:-$TMP/snaps}
adult_widedeep "$SNAPSHOTS"
cat > "$TMP/recd.json" <<JSON
{"http":{"bind":"127.0.0.1","port":$PORT,"threads":$THREADS},"snapshots":{"root":"$SNAPSHOTS","models":["widedeep"]},"log_level":"warn"}
JSON
serve_start "$TMP/serve.log" -c "$TMP/recd.json"
# one request: a person as context, 100 candidate jobs (occupation x hours x workclass)
{ printf '{"user_id":"u1",'; adult_rank_body; } > "$TMP/body.json"
cat > "$TMP/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$TMP/body.json", "r"); wrk.body = f:read("*a"); f:close()
LUA
curl -sf -XPOST -H 'Content-Type: application/json' "http://127.0.0.1:$PORT/v1/rank" --data-binary @"$TMP/body.json" | head -c 200; echo
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
