#!/bin/sh
# bench/demo.sh - what `make demo` runs after building bin/recd (POSIX sh; needs curl, nothing from ../shared).
#
#   1. writes synthetic click sessions and CTR rows (`recd synth`) into DEMO_DIR (default ./demo-data, git-ignored)
#   2. trains a small GRU4Rec (and a small Wide & Deep) there, printing their evaluation metrics
#   3. starts `recd serve` on 127.0.0.1 (port $RECD_PORT, default 8080; a free one if that is taken)
#   4. waits for /readyz, then prints and runs the curl examples of the README
#   5. keeps serving until Ctrl+C (the server then drains and stops), or, with DEMO_EXIT=1, stops it and exits 0
#
# Environment: RECD_BIN (default bin/recd), DEMO_DIR (default demo-data), RECD_PORT (default 8080), DEMO_EXIT.
set -eu

cd "$(dirname "$0")/.."
RECD=${RECD_BIN:-bin/recd}
D=${DEMO_DIR:-demo-data}
PORT=${RECD_PORT:-8080}
EXIT_AFTER=${DEMO_EXIT:-0}
SERVER_PID=""
SERVER_RC=0

say() { printf '\n== %s\n' "$*"; }
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

[ -x "$RECD" ] || die "$RECD not found: build it first (make)"
command -v curl >/dev/null 2>&1 || die "curl is needed (apt-get install curl, or make deps)"

# Stop the server (SIGTERM: it drains in-flight requests and exits 0).
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        SERVER_RC=0
        wait "$SERVER_PID" 2>/dev/null || SERVER_RC=$?
        SERVER_PID=""
    fi
}
trap 'stop_server' EXIT
trap 'printf "\nstopping the server\n"; stop_server; exit 0' INT TERM

mkdir -p "$D"
rm -rf "$D/snapshots"

say "synthetic data ($D)"
"$RECD" synth sessions --out "$D/sessions.tsv" --seed 1
"$RECD" synth ctr --out "$D/ctr_all.csv" --rows 12000 --seed 1
# One synthetic world (seed 1): the first 10000 rows train, the last 2000 test.
head -n 10001 "$D/ctr_all.csv" >"$D/ctr_train.csv"
{ head -n 1 "$D/ctr_all.csv"; tail -n 2000 "$D/ctr_all.csv"; } >"$D/ctr_test.csv"
printf 'sessions.tsv: %s lines (session_id, item_id, timestamp); ctr_train.csv / ctr_test.csv: 10000 / 2000 rows\n' \
    "$(wc -l <"$D/sessions.tsv" | tr -d ' ')"

say "train GRU4Rec (configs/gru4rec.json with a smaller network; test = the last day of sessions)"
echo "\$ recd train gru4rec -c configs/gru4rec.json --data $D/sessions.tsv --out $D/snapshots --layers '[64]' --epochs 3 ..."
"$RECD" train gru4rec -c configs/gru4rec.json --data "$D/sessions.tsv" --out "$D/snapshots" --quiet \
    --layers '[64]' --epochs 3 --n_sample 256 --batch_size 32 \
    --data.item_col item_id --data.time_col timestamp --data.split_time 0 2>"$D/train_gru4rec.log" ||
    { cat "$D/train_gru4rec.log" >&2; die "training GRU4Rec failed"; }
echo "baseline on the same split:"
"$RECD" eval pop --data "$D/sessions.tsv" --quiet

say "train Wide & Deep on synthetic CTR rows (bench/demo_ctr.json)"
"$RECD" train widedeep -c bench/demo_ctr.json --train "$D/ctr_train.csv" --test "$D/ctr_test.csv" \
    --out "$D/snapshots" 2>"$D/train_widedeep.log" ||
    { cat "$D/train_widedeep.log" >&2; die "training Wide & Deep failed"; }

# Is something already listening on 127.0.0.1:$1? (curl exit 7: could not connect)
port_taken() {
    rc=0
    curl -s -o /dev/null --max-time 0.5 "http://127.0.0.1:$1/" || rc=$?
    [ "$rc" -ne 7 ]
}

# Start the server on port $1 (0: any free port); sets SERVER_PID and PORT, returns 1 if it exited early.
start_server() {
    : >"$D/serve.log"
    set -- "$RECD" serve -c configs/recd.json --http.bind 127.0.0.1 --http.port "$1" \
        --snapshots.root "$D/snapshots" --snapshots.models '["gru4rec","widedeep"]'
    if command -v setsid >/dev/null 2>&1; then
        setsid "$@" 2>"$D/serve.log" & # own process group: Ctrl+C reaches the script, which stops it cleanly
    else
        "$@" 2>"$D/serve.log" &
    fi
    SERVER_PID=$!
    i=0
    while [ $i -lt 200 ]; do
        got=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\) .*/\1/p' "$D/serve.log" | head -n 1)
        if [ -n "$got" ]; then
            PORT=$got
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID" 2>/dev/null || true
            SERVER_PID=""
            return 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}

say "serve"
if port_taken "$PORT"; then
    echo "port $PORT is taken: using a free one"
    PORT=0
fi
if ! start_server "$PORT"; then
    stop_server
    if [ "$PORT" = 0 ] || ! grep -q "cannot listen" "$D/serve.log"; then
        cat "$D/serve.log" >&2
        die "recd serve did not start"
    fi
    echo "could not listen on port $PORT: using a free one"
    start_server 0 || { cat "$D/serve.log" >&2; die "recd serve did not start"; }
fi
BASE="localhost:$PORT"
echo "\$ recd serve -c configs/recd.json --http.bind 127.0.0.1 --http.port $PORT --snapshots.root $D/snapshots --snapshots.models '[\"gru4rec\",\"widedeep\"]'"
echo "(pid $SERVER_PID, log in $D/serve.log)"
i=0
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$BASE/readyz" || true)" = 200 ]; do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$D/serve.log" >&2; die "recd serve exited"; }
    i=$((i + 1))
    [ $i -lt 300 ] || die "recd serve not ready after 30 s (see $D/serve.log)"
    sleep 0.1
done

# Print a command, run it.
ex() {
    printf '\n$ %s\n' "$1"
    eval "$1"
}
J="-H 'Content-Type: application/json'"

say "the API (README.md lists the same examples with their answers)"
echo "# stateful: one click at a time for session s1 (the server keeps its GRU state)"
ex "curl -s $BASE/v1/next $J -d '{\"session_id\":\"s1\",\"item_id\":\"i260\",\"k\":3}'"
ex "curl -s $BASE/v1/next $J -d '{\"session_id\":\"s1\",\"item_id\":\"i153\",\"k\":3,\"exclude_seen\":true}'"
echo
echo "# stateless: the whole history in the request (any replica can answer; unknown ids are listed)"
ex "curl -s $BASE/v1/next $J -d '{\"items\":[\"i260\",\"i153\",\"nope\"],\"k\":3}'"
echo
echo "# Wide & Deep: rank candidates by predicted click probability"
ex "curl -s $BASE/v1/rank $J -d '{\"user_id\":\"u1\",\"context\":{\"age\":35,\"income\":42000,\"hour\":\"h9\",\"segment\":\"g2\"},\"candidates\":[{\"item_id\":\"ad1\",\"features\":{\"device\":\"d0\",\"site\":\"s3\"}},{\"item_id\":\"ad2\",\"features\":{\"device\":\"d1\",\"site\":\"s14\"}},{\"item_id\":\"ad3\",\"features\":{\"device\":\"d2\",\"site\":\"s7\"}}],\"k\":2}'"
echo
echo "# models, health, readiness"
ex "curl -s $BASE/v1/models | head -c 700"
echo " ... (the whole meta document of each snapshot follows)"
ex "curl -s $BASE/healthz"
ex "curl -s $BASE/readyz"
echo
echo "# Prometheus metrics (excerpt)"
ex "curl -s $BASE/metrics | grep -E '^recd_(http_requests_total|sessions |model_version|next_scored_total)'"
echo
echo "# an error: k out of range -> 422, application/problem+json"
ex "curl -s -i $BASE/v1/next $J -d '{\"session_id\":\"s1\",\"item_id\":\"i260\",\"k\":0}'"
echo

if [ "$EXIT_AFTER" = 1 ]; then
    say "DEMO_EXIT=1: stopping the server"
    stop_server
    [ "$SERVER_RC" = 0 ] || { cat "$D/serve.log" >&2; die "recd serve exited with status $SERVER_RC"; }
    echo "demo done"
    exit 0
fi
say "serving on http://$BASE (snapshots in $D/snapshots): try the commands above; Ctrl+C stops"
wait "$SERVER_PID" || true
SERVER_PID=""
