#!/bin/sh
# bench/serve_next.sh - POST /v1/next under wrk on loopback with real Globo test-session clicks (issue 4).
#
# Prepares a GRU4Rec model of the Globo split (issue 3: T = 2017-10-17 00:00 UTC-3, test window 1 day,
# 11,901 training items), starts `recd serve`, replays the test sessions' clicks as stateful requests
# (session_id + item_id, k=20) with wrk for 1 connection and then 16 connections, stops the server, and
# prints one line per run, the 16-connection line last:
#   requests/s=N p50_ms=X p90_ms=Y p99_ms=Z
# The model, in order of preference:
#   SNAP_ROOT=DIR        use DIR/$MODEL/<newest version> (e.g. the output of bench/gru4rec_globo.sh, KEEP=1)
#   RANDOM_MODEL=1       a random GRU4Rec of the same shape (11,901 x H=224) over the real item ids
#   otherwise            train once with `recd train gru4rec -c configs/gru4rec.json` (1 epoch), cached
#                        in $WORK/trained and reused by later runs
# Environment: WORK (cache folder, default /tmp/recd-bench-serve), DUR (seconds per run, default 10; DUR1
# for the 1-connection run),
# PORT (default 18080), MODE (stateful|stateless, default stateful), SERVE_FLAGS (extra `recd serve`
# settings, e.g. "--batch.max 1" or "--score.int8 false"), WRK_THREADS (default 1), RECD (binary),
# SWAP_EVERY (seconds: republish the model that often during the 16-connection run; hot-swap figure).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${RECD_SHARED:-"$root/../shared"}
data="$shared/data/globo-news-sessions/clicks.csv.gz"
WORK=${WORK:-/tmp/recd-bench-serve}
DUR=${DUR:-10}
PORT=${PORT:-18080}
MODE=${MODE:-stateful}
MODEL=${MODEL:-gru4rec}
WRK_THREADS=${WRK_THREADS:-1}
SERVE_FLAGS=${SERVE_FLAGS:-}
RECD=${RECD:-"$root/bin/recd"}
# shellcheck source=bench/lib_serve.sh
. "$here/lib_serve.sh"
BIN=$RECD
command -v wrk >/dev/null || { echo "serve_next.sh: wrk is not installed (make deps)" >&2; exit 1; }
if [ ! -x "$RECD" ]; then
    echo "serve_next.sh: building $RECD" >&2
    make -C "$root" -j2 bin/recd >&2
fi
mkdir -p "$WORK"

split="$WORK/split"
if [ ! -f "$split/test.tsv" ]; then
    [ -f "$data" ] || { echo "serve_next.sh: dataset not found: $data" >&2; exit 1; }
    "$RECD" split sessions --data "$data" --out "$split" --session-col session_id --item-col click_article_id \
        --time-col click_timestamp --split-time 1508209200000 --days 1 --quiet >&2
fi
clicks="$WORK/clicks.tsv"
[ -f "$clicks" ] || tail -n +2 "$split/test.tsv" | cut -f1,2 >"$clicks"

# 0 when ROOT/MODEL holds a published (numeric) version.
published() { ls "$1/$MODEL" 2>/dev/null | grep -qE '^[0-9]+$'; }
if [ -n "${SNAP_ROOT:-}" ]; then
    snaps=$SNAP_ROOT
elif [ "${RANDOM_MODEL:-0}" = 1 ]; then
    snaps="$WORK/random"
    if ! published "$snaps"; then
        lib="$(dirname "$RECD")/../obj/librecd.a"
        [ -f "$lib" ] || { make -C "$root" -j2 obj/librecd.a >&2 && lib="$root/obj/librecd.a"; }
        # shellcheck disable=SC2046
        cc -O2 -std=c11 -D_GNU_SOURCE -I"$root" $(pkg-config --cflags openblas) "$here/mksnap.c" "$lib" \
            $(pkg-config --libs openblas libmicrohttpd jansson lmdb libuv zlib) -lm -pthread -o "$WORK/mksnap"
        "$WORK/mksnap" "$split/train.tsv" "$snaps" "$MODEL" 224 42 >/dev/null
    fi
else
    snaps="$WORK/trained"
    if ! published "$snaps"; then
        echo "serve_next.sh: training GRU4Rec on the Globo split (1 epoch; cached in $snaps)" >&2
        "$RECD" train gru4rec -c "$root/configs/gru4rec.json" --train "$split/train.tsv" --test "$split/test.tsv" \
            --data.session_col session_id --data.item_col item_id --data.time_col timestamp --epochs 1 \
            --out "$snaps" --name "$MODEL" --quiet >&2
    fi
fi

swapper=""
cleanup() {
    [ -n "$swapper" ] && kill "$swapper" 2>/dev/null
    serve_stop
}
trap cleanup EXIT INT TERM
READY_S=60 # a large model takes a while to load
# shellcheck disable=SC2086
serve_start "$WORK/server.log" -c "$root/configs/recd.json" --http.bind 127.0.0.1 --http.port "$PORT" \
    --snapshots.root "$snaps" --snapshots.models "[\"$MODEL\"]" --log_level warn $SERVE_FLAGS
url="http://127.0.0.1:$PORT"
export CLICKS="$clicks" MODE
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
nreq() { curl -s "$url/metrics" | awk '/^recd_http_requests_total\{route="\/v1\/next"/ {n += $2} END {print n + 0}'; }
# Runs wrk and reports on stderr the server's CPU time per request (user+sys): unlike wall-clock figures it
# hardly depends on what else the machine runs.
run() {
    t0=$(ticks)
    n0=$(nreq)
    wrk -t"$1" -c"$2" -d"${3}s" --timeout 5s -s "$here/next.lua" "$url" | tail -n 1
    t1=$(ticks)
    n1=$(nreq)
    awk -v t=$((t1 - t0)) -v n=$((n1 - n0)) -v hz="$hz" -v c="$2" \
        'BEGIN { if (n > 0) printf "  (%d connections: server CPU %.0f us per request)\n", c, t / hz * 1e6 / n }' >&2
}
wrk -t1 -c4 -d2s -s "$here/next.lua" "$url" >/dev/null 2>&1 # warm-up
run 1 1 "${DUR1:-$DUR}"
if [ -n "${SWAP_EVERY:-}" ]; then
    # Republish the serving version under new numbers every SWAP_EVERY seconds (hard links: no copy).
    latest=$(ls "$snaps/$MODEL" | grep -E '^[0-9]+$' | sort -n | tail -n 1)
    : >"$WORK/rss.log"
    (
        v=$((latest + 1000))
        n=0
        while :; do
            sleep "$SWAP_EVERY"
            [ $n -gt 0 ] && echo "$n $(awk '/VmRSS/ {print $2}' "/proc/$PID/status")" >>"$WORK/rss.log"
            n=$((n + 1))
            rm -rf "$snaps/$MODEL/.tmp-$v"
            cp -al "$snaps/$MODEL/$latest" "$snaps/$MODEL/.tmp-$v" && mv "$snaps/$MODEL/.tmp-$v" "$snaps/$MODEL/$v"
            [ -d "$snaps/$MODEL/$((v - 1))" ] && [ $((v - 1)) -ne "$latest" ] && rm -rf "$snaps/$MODEL/$((v - 1))"
            v=$((v + 1))
        done
    ) &
    swapper=$!
fi
run "$WRK_THREADS" 16 "$DUR"
if [ -n "$swapper" ]; then
    kill "$swapper" 2>/dev/null || true
    wait "$swapper" 2>/dev/null || true
    swapper=""
    curl -s "$url/metrics" | grep -E '^recd_model_swaps_total|^recd_http_requests_total\{route="/v1/next"' >&2
    awk 'NR == 1 {first = $2} $1 == 10 {ten = $2} {last = $2; n = $1}
        END {if (NR) printf "  server RSS %d kB after 1 swap, %d kB after 10, %d kB after %d swaps (%+.1f%% vs 1, %+.1f%% vs 10)\n",
             first, ten, last, n, (last - first) * 100.0 / first, ten ? (last - ten) * 100.0 / ten : 0}' "$WORK/rss.log" >&2
    for d in "$snaps/$MODEL"/*; do
        b=$(basename "$d")
        [ "$b" -gt $((latest + 999)) ] 2>/dev/null && rm -rf "$d"
    done
fi
