#!/bin/sh
# bench/serve_ratings.sh - the two rating routes under wrk on loopback with a biased MF model of ML-1M
# (issue 12): GET /v1/users/{id}/recommendations?k=20 for random known users (top-k over all 3,706
# items, rated items excluded) and POST /v1/ratings with 100 random items, 16 connections each.
#
# The model, in order of preference:
#   SNAPSHOTS=DIR   serve DIR/$MODEL/<newest version> (e.g. a root `recd train biasedmf --out DIR` wrote)
#   otherwise       train once with `recd train biasedmf -c configs/biasedmf.json --data $DATA` (cached in
#                   $WORK/trained and reused by later runs; about 30 s on the 2 cores, under nice)
# Prints one line per route, the same fields as bench/serve_next.sh:
#   recommend requests/s=N p50_ms=X p90_ms=Y p99_ms=Z
#   ratings   requests/s=N p50_ms=X p90_ms=Y p99_ms=Z
# and on stderr the server's CPU time per request. Targets (issue 12): p99 under 2 ms for both.
# Environment: WORK (cache folder, default /tmp/recd-bench-ratings), DATA (default
# ../shared/data/movielens-1m/ratings-5fold), MODEL (default biasedmf), DUR (seconds per run, default 10),
# CONNS (default 16), PORT (default 18081), WRK_THREADS (default 1), NITEMS (ids per ratings request,
# default 100), K (default 20), SERVE_FLAGS (extra `recd serve` settings), TRAIN_FLAGS (extra `recd train`
# settings), RECD (binary).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${RECD_SHARED:-"$(cd "$root/.." && pwd)/shared"}
DATA=${DATA:-"$shared/data/movielens-1m/ratings-5fold"}
WORK=${WORK:-/tmp/recd-bench-ratings}
MODEL=${MODEL:-biasedmf}
DUR=${DUR:-10}
CONNS=${CONNS:-16}
PORT=${PORT:-18081}
WRK_THREADS=${WRK_THREADS:-1}
NITEMS=${NITEMS:-100}
K=${K:-20}
SERVE_FLAGS=${SERVE_FLAGS:-}
TRAIN_FLAGS=${TRAIN_FLAGS:-}
RECD=${RECD:-"$root/bin/recd"}
# shellcheck source=bench/lib_serve.sh
. "$here/lib_serve.sh"
BIN=$RECD
command -v wrk >/dev/null || { echo "serve_ratings.sh: wrk is not installed (make deps)" >&2; exit 1; }
if [ ! -x "$RECD" ]; then
    echo "serve_ratings.sh: building $RECD" >&2
    make -C "$root" -j2 bin/recd >&2
fi
mkdir -p "$WORK"

# 0 when ROOT/MODEL holds a published (numeric) version.
published() { ls "$1/$MODEL" 2>/dev/null | grep -qE '^[0-9]+$'; }
if [ -n "${SNAPSHOTS:-}" ]; then
    snaps=$SNAPSHOTS
    published "$snaps" || { echo "serve_ratings.sh: no published $MODEL version under $snaps" >&2; exit 1; }
else
    snaps="$WORK/trained"
    if ! published "$snaps"; then
        [ -e "$DATA" ] || { echo "serve_ratings.sh: dataset not found: $DATA" >&2; exit 1; }
        echo "serve_ratings.sh: training $MODEL on $DATA (cached in $snaps)" >&2
        # shellcheck disable=SC2086
        nice -n 10 "$RECD" train "$MODEL" -c "$root/configs/$MODEL.json" --data "$DATA" --out "$snaps" --quiet $TRAIN_FLAGS >&2
    fi
fi

# The ids the requests use: the model's own users and items (its vocabularies, from `recd inspect`
# when it lists them, else the data's ids).
users="$WORK/users.txt"
items="$WORK/items.txt"
if [ ! -s "$users" ] || [ ! -s "$items" ]; then
    [ -e "$DATA" ] || { echo "serve_ratings.sh: dataset not found (the user and item ids come from it): $DATA" >&2; exit 1; }
    if [ -d "$DATA" ]; then files=$(find "$DATA" -maxdepth 1 -type f ! -name '.*' | sort); else files=$(echo "$DATA" | tr ',' ' '); fi
    # shellcheck disable=SC2086
    cat $files | awk -F'[,\t]|::' 'NF >= 3 && $3 ~ /^[0-9.]+$/ {print $1 > "'"$users.all"'"; print $2 > "'"$items.all"'"}'
    sort -u "$users.all" >"$users"
    sort -u "$items.all" >"$items"
    rm -f "$users.all" "$items.all"
fi
echo "serve_ratings.sh: $(wc -l <"$users" | tr -d ' ') users, $(wc -l <"$items" | tr -d ' ') items" >&2

trap 'serve_stop' EXIT
trap 'serve_stop; exit 1' INT TERM
# shellcheck disable=SC2086
READY_S=60 serve_start "$WORK/server.log" -c "$root/configs/recd.json" --http.bind 127.0.0.1 --http.port "$PORT" \
    --snapshots.root "$snaps" --snapshots.models "[\"$MODEL\"]" --log_level warn $SERVE_FLAGS
pid=$PID
url="http://127.0.0.1:$PORT"
u1=$(head -n 1 "$users")
curl -sf "$url/v1/users/$u1/recommendations?k=3" >/dev/null ||
    { echo "serve_ratings.sh: GET /v1/users/$u1/recommendations failed:" >&2; curl -s "$url/v1/users/$u1/recommendations?k=3" >&2; exit 1; }
export USERS="$users" ITEMS="$items" K NITEMS
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
nreq() { curl -s "$url/metrics" | awk -v r="$1" 'index($0, "recd_http_requests_total{route=\"" r "\"") == 1 {n += $2} END {print n + 0}'; }
# run NAME ROUTE_LABEL: wrk for DUR s at CONNS connections; the server's CPU per request on stderr.
run() {
    t0=$(ticks)
    n0=$(nreq "$2")
    printf '%-9s ' "$1"
    MODE=$1 wrk -t"$WRK_THREADS" -c"$CONNS" -d"${DUR}s" --timeout 5s -s "$here/ratings.lua" "$url" | tail -n 1
    t1=$(ticks)
    n1=$(nreq "$2")
    awk -v t=$((t1 - t0)) -v n=$((n1 - n0)) -v hz="$hz" -v c="$CONNS" -v name="$1" \
        'BEGIN { if (n > 0) printf "  (%s, %d connections: server CPU %.0f us per request)\n", name, c, t / hz * 1e6 / n }' >&2
}
MODE=recommend wrk -t1 -c4 -d2s -s "$here/ratings.lua" "$url" >/dev/null 2>&1 # warm-up
MODE=ratings wrk -t1 -c4 -d2s -s "$here/ratings.lua" "$url" >/dev/null 2>&1
run recommend "/v1/users/{id}/recommendations"
run ratings "/v1/ratings"
