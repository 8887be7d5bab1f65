# shellcheck shell=sh
# bench/lib_serve.sh - a `recd serve` for the bench scripts (bench/events_http.sh, bench/ab_replay.sh,
# bench/rank_adult.sh, bench/serve_next.sh), sourced after `set -eu`:
#   . "$(dirname "$0")/lib_serve.sh"
# Sets BIN to the recd binary ($RECD_BIN, else bin/recd) and PID to "" (no server). The script sets PORT.
#   serve_tmp NAME          TMP=a new folder /tmp/NAME.XXXXXX; on exit the server is stopped and TMP removed
#   serve_start LOG ARGS... start `$BIN serve ARGS...` in the background (stderr in LOG), set PID, wait
#                           until GET /readyz on 127.0.0.1:$PORT answers 200 (READY_S seconds at most,
#                           default 20); when the server exits or is not ready by then: LOG on stderr, exit 1
#   serve_stop              SIGTERM the server and wait for it (nothing when none is running)
BIN=${RECD_BIN:-bin/recd}
PID=

serve_stop() {
    if [ -n "$PID" ]; then
        kill "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
        PID=
    fi
}

serve_tmp() {
    TMP=$(mktemp -d "/tmp/$1.XXXXXX")
    trap 'serve_stop; rm -rf "$TMP"' EXIT
}

serve_start() {
    _log=$1
    shift
    "$BIN" serve "$@" 2>"$_log" &
    PID=$!
    _i=0
    until curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; do
        _i=$((_i + 1))
        if [ $_i -gt $((${READY_S:-20} * 10)) ] || ! kill -0 "$PID" 2>/dev/null; then
            echo "${0##*/}: recd serve not ready on port $PORT; its log:" >&2
            cat "$_log" >&2
            exit 1
        fi
        sleep 0.1
    done
}
