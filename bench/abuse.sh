#!/bin/sh
# bench/abuse.sh - attacks on a real `recd serve` (issue 9: no client can crash, starve or exhaust recd).
#
# Needs nothing from ../shared: trains the demo's two small models (bench/demo.sh's commands: a GRU4Rec on
# `recd synth sessions`, a Wide & Deep on `recd synth ctr` with bench/demo_ctr.json) into $WORK once, builds
# bin/recd when it is missing and the attack client bench/abuse.c into $WORK, starts `recd serve` with both
# models on 127.0.0.1:$PORT, runs every attack, one result line each, and checks the server is still alive
# (process running and /healthz 200) after each and at the end (a server that died is restarted for the
# next attack, and the run fails):
#   mix       N requests in random order over 4 keep-alive connections, across every route and error
#   mutate    N mutated requests (bytes, headers, lengths, framing, methods, line endings, JSON)
#   sessions  N new session ids: server RSS per session (before bigrank, whose freed memory it would reuse)
#   bigrank   N keep-alive connections each send one ~BYTES /v1/rank request and stay open: server RSS
#   exhaust   idle and trickling sockets from 127.0.0.2 while /healthz is probed from 127.0.0.1
# See bench/abuse.c for each line's fields. Exit status 0 when the server survived everything, else 1.
#
# Environment: RECD (binary, default bin/recd), WORK (default /tmp/recd-abuse), PORT (default 18090),
# CONFIG (default configs/recd.json), SERVE_FLAGS (extra `recd serve` settings), MIX_N (3000), MUTATE_N
# (3000), BIG_N (1000), BIG_BYTES (58000), SESS_N (100000), NIDLE (1100), NTRICKLE (1100), EXHAUST_S (20),
# ABUSE_SEED, ABUSE_VERBOSE. The last line: server_died_during=none|ATTACK,... server_alive_at_end=yes|no.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
RECD=${RECD:-"$root/bin/recd"}
WORK=${WORK:-/tmp/recd-abuse}
PORT=${PORT:-18090}
SERVE_FLAGS=${SERVE_FLAGS:-}
CONFIG=${CONFIG:-"$root/configs/recd.json"}
MIX_N=${MIX_N:-3000}
MUTATE_N=${MUTATE_N:-3000}
BIG_N=${BIG_N:-1000}
BIG_BYTES=${BIG_BYTES:-58000}
SESS_N=${SESS_N:-100000}
NIDLE=${NIDLE:-1100}
NTRICKLE=${NTRICKLE:-1100}
EXHAUST_S=${EXHAUST_S:-20}

die() { echo "abuse.sh: $*" >&2; exit 1; }
command -v curl >/dev/null || die "curl is needed (make deps)"
if [ ! -x "$RECD" ]; then
    echo "abuse.sh: building $RECD" >&2
    make -C "$root" -j2 bin/recd >&2
fi
mkdir -p "$WORK"

# The attack client.
if [ ! -x "$WORK/abuse" ] || [ "$here/abuse.c" -nt "$WORK/abuse" ]; then
    cc -O2 -std=c11 -Wall -Wextra -o "$WORK/abuse" "$here/abuse.c" || die "cannot build bench/abuse.c"
fi
A="$WORK/abuse"

# The demo's models (bench/demo.sh), trained once and reused.
snaps="$WORK/snapshots"
published() { ls "$snaps/$1" 2>/dev/null | grep -qE '^[0-9]+$'; }
if ! published gru4rec || ! published widedeep; then
    echo "abuse.sh: training the demo's models into $snaps" >&2
    rm -rf "$snaps"
    "$RECD" synth sessions --out "$WORK/sessions.tsv" --seed 1 >&2
    "$RECD" synth ctr --out "$WORK/ctr_all.csv" --rows 12000 --seed 1 >&2
    head -n 10001 "$WORK/ctr_all.csv" >"$WORK/ctr_train.csv"
    { head -n 1 "$WORK/ctr_all.csv"; tail -n 2000 "$WORK/ctr_all.csv"; } >"$WORK/ctr_test.csv"
    "$RECD" train gru4rec -c "$root/configs/gru4rec.json" --data "$WORK/sessions.tsv" --out "$snaps" --quiet \
        --layers '[64]' --epochs 3 --n_sample 256 --batch_size 32 \
        --data.item_col item_id --data.time_col timestamp --data.split_time 0 2>"$WORK/train_gru4rec.log" ||
        { cat "$WORK/train_gru4rec.log" >&2; die "training GRU4Rec failed"; }
    "$RECD" train widedeep -c "$root/bench/demo_ctr.json" --train "$WORK/ctr_train.csv" \
        --test "$WORK/ctr_test.csv" --out "$snaps" 2>"$WORK/train_widedeep.log" ||
        { cat "$WORK/train_widedeep.log" >&2; die "training Wide & Deep failed"; }
fi

log="$WORK/server.log"
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM
start_server() {
    # shellcheck disable=SC2086
    "$RECD" serve -c "$CONFIG" --http.bind 127.0.0.1 --http.port "$PORT" --snapshots.root "$snaps" \
        --snapshots.models '["gru4rec","widedeep"]' --log_level warn $SERVE_FLAGS 2>>"$log" &
    pid=$!
    i=0
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz" || true)" = 200 ]; do
        i=$((i + 1))
        if [ $i -gt 300 ] || ! kill -0 "$pid" 2>/dev/null; then
            cat "$log" >&2
            die "recd serve not ready on port $PORT"
        fi
        sleep 0.1
    done
}
: >"$log"
start_server

failed=0
died=""
# The server process must still run after each attack; when it died, say how, and start a new one for the
# next attack (the run fails).
check() {
    if ! kill -0 "$pid" 2>/dev/null; then
        rc=0
        wait "$pid" 2>/dev/null || rc=$?
        pid=""
        how="exit status $rc"
        [ "$rc" -gt 128 ] && how="signal $((rc - 128))"
        echo "abuse.sh: the server died during '$1' ($how); restarting it for the next attack" >&2
        died="$died${died:+,}$1"
        failed=1
        start_server
    fi
}
run() {
    name=$1
    shift
    "$A" "$@" || failed=1
    check "$name"
}

run mix mix 127.0.0.1 "$PORT" "$MIX_N"
run mutate mutate 127.0.0.1 "$PORT" "$MUTATE_N"
run sessions sessions 127.0.0.1 "$PORT" "$SESS_N" "$pid"
run bigrank bigrank 127.0.0.1 "$PORT" "$BIG_N" "$BIG_BYTES" "$pid"
run exhaust exhaust 127.0.0.1 "$PORT" 127.0.0.2 127.0.0.1 "$NIDLE" "$NTRICKLE" "$EXHAUST_S"

code=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "http://127.0.0.1:$PORT/healthz" || true)
alive=no
[ "$code" = 200 ] && kill -0 "$pid" 2>/dev/null && alive=yes
echo "server_died_during=${died:-none} server_alive_at_end=$alive"
[ "$alive" = yes ] && [ "$failed" = 0 ]
