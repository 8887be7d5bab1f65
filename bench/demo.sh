#!/bin/sh
# bench/demo.sh - what `make demo` runs after building bin/recd (POSIX sh; needs curl, nothing from ../shared).
#
#   1. writes synthetic click sessions and CTR rows (`recd synth`) into DEMO_DIR (default ./demo-data, git-ignored)
#   2. trains a small GRU4Rec, an item-kNN on the same sessions, a small Wide & Deep, and a biased MF on
#      synthetic ratings (`recd synth ratings`) there, printing their evaluation metrics
#   3. starts `recd serve` on 127.0.0.1 (port $RECD_PORT, default 8080; a free one if that is taken) with a
#      state folder (DEMO_DIR/state) and two experiments: next-demo (gru4rec, the control, against itemknn on
#      /v1/next) and rank-demo (widedeep pinned to version 1, the control, against the newest widedeep)
#   4. waits for /readyz, then prints and runs the curl examples of the README
#   5. the retraining loop: replays the training days of the sessions as traffic (sh + awk + one keep-alive
#      curl per phase): each click asks /v1/next in next-demo, then posts a click event for the item the user
#      really clicked next, and an acquisition when that item was the first one shown; and rank visits of new
#      CTR rows in rank-demo, acquiring the first shown row whose label is 1. It prints the report (and the
#      page's address), exports the events (`recd events export`), retrains gru4rec (tested on the held-out
#      last day) and widedeep from the export into the served snapshots, and waits for the server to swap
#   6. keeps serving until Ctrl+C (the server then drains and stops), or, with DEMO_EXIT=1, stops it and exits 0
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
rm -rf "$D/snapshots" "$D/state" # a new run starts with new models and no events

say "synthetic data ($D)"
"$RECD" synth sessions --out "$D/sessions.tsv" --seed 1
"$RECD" synth ctr --out "$D/ctr_world.csv" --rows 20000 --seed 1
# One synthetic world (seed 1): rows 1-10000 train, 10001-12000 test, 12001-20000 are the served visits.
head -n 10001 "$D/ctr_world.csv" >"$D/ctr_train.csv"
{ head -n 1 "$D/ctr_world.csv"; sed -n 10002,12001p "$D/ctr_world.csv"; } >"$D/ctr_test.csv"
"$RECD" split sessions --data "$D/sessions.tsv" --out "$D/split" --quiet >/dev/null # the loop's replay and test
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

say "train item-kNN on the same sessions (configs/itemknn.json)"
echo "\$ recd train itemknn -c configs/itemknn.json --data $D/sessions.tsv --out $D/snapshots --data.item_col item_id ..."
"$RECD" train itemknn -c configs/itemknn.json --data "$D/sessions.tsv" --out "$D/snapshots" --quiet \
    --data.item_col item_id --data.time_col timestamp --data.split_time 0 2>"$D/train_itemknn.log" ||
    { cat "$D/train_itemknn.log" >&2; die "training item-kNN failed"; }

say "train Wide & Deep on synthetic CTR rows (bench/demo_ctr.json)"
"$RECD" train widedeep -c bench/demo_ctr.json --train "$D/ctr_train.csv" --test "$D/ctr_test.csv" \
    --out "$D/snapshots" 2>"$D/train_widedeep.log" ||
    { cat "$D/train_widedeep.log" >&2; die "training Wide & Deep failed"; }

say "train biased MF on synthetic ratings (configs/biasedmf.json; users u1.., items m1..)"
"$RECD" synth ratings --out "$D/ratings.tsv" --seed 1
echo "\$ recd train biasedmf -c configs/biasedmf.json --data $D/ratings.tsv --out $D/snapshots"
"$RECD" train biasedmf -c configs/biasedmf.json --data "$D/ratings.tsv" --out "$D/snapshots" --quiet \
    2>"$D/train_biasedmf.log" || { cat "$D/train_biasedmf.log" >&2; die "training biased MF failed"; }
grep 'biasedmf rmse=' "$D/train_biasedmf.log" || true

# Is something already listening on 127.0.0.1:$1? (curl exit 7: could not connect)
port_taken() {
    rc=0
    curl -s -o /dev/null --max-time 0.5 "http://127.0.0.1:$1/" || rc=$?
    [ "$rc" -ne 7 ]
}

# The demo's experiments (README "Experiments"): users are the units; each experiment splits them half and half.
MODELS='["gru4rec","itemknn","widedeep","biasedmf"]'
EXPERIMENTS='[{"name":"next-demo","salt":"next-demo-1","unit":"user_id","control":"gru4rec",
  "arms":[{"name":"gru4rec","model":"gru4rec","share":0.5},{"name":"itemknn","model":"itemknn","share":0.5}]},
 {"name":"rank-demo","salt":"rank-demo-1","unit":"user_id","control":"v1",
  "arms":[{"name":"v1","model":"widedeep","version":"1","share":0.5},{"name":"latest","model":"widedeep","share":0.5}]}]'

# Start the server on port $1 (0: any free port); sets SERVER_PID and PORT, returns 1 if it exited early.
start_server() {
    : >"$D/serve.log"
    set -- "$RECD" serve -c configs/recd.json --http.bind 127.0.0.1 --http.port "$1" \
        --snapshots.root "$D/snapshots" --snapshots.models "$MODELS" --state.dir "$D/state" \
        --experiments "$EXPERIMENTS"
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
echo "\$ recd serve -c configs/recd.json --http.bind 127.0.0.1 --http.port $PORT --snapshots.root $D/snapshots --snapshots.models '$MODELS' --state.dir $D/state --experiments '$EXPERIMENTS'"
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
echo "# rating models: predicted ratings (an unknown item gets the default, flagged), a user's top unseen items,"
echo "# and a user the model has never seen (the most popular items, flagged)"
ex "curl -s $BASE/v1/ratings $J -d '{\"user_id\":\"u1\",\"item_ids\":[\"m36\",\"m7\",\"nope\"]}'"
ex "curl -s '$BASE/v1/users/u1/recommendations?k=3'"
ex "curl -s '$BASE/v1/users/someone-new/recommendations?k=3'"
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

echo "# an experiment: the user's arm answers (\"experiment\", \"arm\"); the answer's request_id names it in events"
ex "curl -s $BASE/v1/rank $J -d '{\"experiment\":\"rank-demo\",\"user_id\":\"u1\",\"context\":{\"age\":35,\"income\":42000,\"hour\":\"h9\",\"segment\":\"g2\"},\"candidates\":[{\"item_id\":\"ad1\",\"features\":{\"device\":\"d0\",\"site\":\"s3\"}},{\"item_id\":\"ad2\",\"features\":{\"device\":\"d1\",\"site\":\"s14\"}}],\"k\":1}' | tee $D/exp_answer.json"
RID=$(sed -n 's/.*"request_id":"\([^"]*\)".*/\1/p' "$D/exp_answer.json")
ITEM=$(sed -n 's/^{"items":\[{"item_id":"\([^"]*\)".*/\1/p' "$D/exp_answer.json")
[ -n "$RID" ] && [ -n "$ITEM" ] || die "no request_id or item in the experiment's answer"
ex "curl -s $BASE/v1/events $J -d '[{\"request_id\":\"$RID\",\"type\":\"click\",\"item_id\":\"$ITEM\"},{\"request_id\":\"$RID\",\"type\":\"acquisition\",\"item_id\":\"$ITEM\",\"value\":12.5}]'"
echo

# The replay: each phase writes a curl config (one request per block, `next` between them) with awk, and one
# curl sends it over a keep-alive connection; answers are read back in the same order.

# In a curl config a value is quoted, so the JSON's quotes are written \" (awk: "\\\""). The events phases
# share these awk functions: ev() collects events, flush() writes one POST of at most 200 of them.
AWK_EVENTS='
function flush() {
    if (nb == 0) return
    if (nposts++) print "next"
    printf "url = \"http://%s/v1/events\"\nheader = \"Content-Type: application/json\"\n", base
    printf "data = \"[%s]\"\nwrite-out = \"\\n\"\n", buf
    buf = ""; nb = 0
}
function ev(rid, type, item) {
    buf = buf (nb++ ? "," : "") "{\\\"request_id\\\":\\\"" rid "\\\",\\\"type\\\":\\\"" type "\\\",\\\"item_id\\\":\\\"" item "\\\"}"
    if (nb >= 200) flush()
}
function rid_of(s) { return match(s, /"request_id":"[^"]*"/) ? substr(s, RSTART + 14, RLENGTH - 15) : "" }'

# Sends the curl config $1, answers to $2 (one per line); dies on a transport error.
send() {
    curl -s -K "$1" >"$2" || die "replaying $1 failed (curl exit $?; see $D/serve.log)"
}

# Prints the number of events accepted by the answers in $1; fails (the caller's N=$(...) stops the demo)
# when a batch was refused.
accepted() {
    awk '/^$/ { next } /"accepted":/ { match($0, /"accepted":[0-9]+/); n += substr($0, RSTART + 11, RLENGTH - 11); next }
         { print "demo: a batch of events was refused: " $0 > "/dev/stderr"; bad = 1 } END { print n + 0; exit bad }' "$1"
}

say "the retraining loop: replay the training days as traffic in the experiments"
echo "next-demo: each click of $D/split/train.tsv asks /v1/next for the session's user (k 5); the user then clicks"
echo "the item they really clicked next (a click event) and acquires it when it was the first one shown"
awk -F'\t' -v base="$BASE" -v plan="$D/next_plan.tsv" '
NR == 1 { next }
{
    if ($1 == s && p != "") {
        printf "%s\n", $2 > plan
        if (n++) print "next"
        printf "url = \"http://%s/v1/next\"\nheader = \"Content-Type: application/json\"\n", base
        printf "data = \"{\\\"experiment\\\":\\\"next-demo\\\",\\\"user_id\\\":\\\"u%s\\\",\\\"session_id\\\":\\\"%s\\\",\\\"item_id\\\":\\\"%s\\\",\\\"k\\\":5}\"\n", s, s, p
        printf "write-out = \"\\n\"\n"
    }
    s = $1; p = $2
}' "$D/split/train.tsv" >"$D/next_requests.curl"
send "$D/next_requests.curl" "$D/next_answers.jsonl"
awk -v base="$BASE" -v plan="$D/next_plan.tsv" "$AWK_EVENTS"'
/^$/ { next }
{
    if ((getline truth < plan) <= 0) exit 1
    rid = rid_of($0)
    if (rid == "") { print "demo: no request_id in " $0 > "/dev/stderr"; exit 1 }
    ev(rid, "click", truth)
    if (match($0, /^\{"items":\[\{"item_id":"[^"]*"/) && substr($0, RSTART + 22, RLENGTH - 23) == truth)
        ev(rid, "acquisition", truth)
}
END { flush() }' "$D/next_answers.jsonl" >"$D/next_events.curl" || die "unexpected /v1/next answers in $D/next_answers.jsonl"
send "$D/next_events.curl" "$D/next_events.jsonl"
N=$(accepted "$D/next_events.jsonl")
echo "$(wc -l <"$D/next_plan.tsv" | tr -d ' ') requests to /v1/next, $N events accepted"

echo "rank-demo: rows 12001-20000 of the CTR world, 5 candidates a visit (a new user each), 2 shown; the user"
echo "acquires the first shown row whose label is 1"
awk -F, -v base="$BASE" -v labels="$D/rank_labels.tsv" '
NR <= 12001 { next }
{
    printf "r%d\t%s\n", NR, $1 > labels
    c = c (c == "" ? "" : ",") sprintf("{\\\"item_id\\\":\\\"r%d\\\",\\\"features\\\":{\\\"age\\\":%s,\\\"income\\\":%s,\\\"device\\\":\\\"%s\\\",\\\"site\\\":\\\"%s\\\",\\\"hour\\\":\\\"%s\\\",\\\"segment\\\":\\\"%s\\\"}}", NR, $2, $3, $4, $5, $6, $7)
    if (++nc < 5) next
    if (n++) print "next"
    printf "url = \"http://%s/v1/rank\"\nheader = \"Content-Type: application/json\"\n", base
    printf "data = \"{\\\"experiment\\\":\\\"rank-demo\\\",\\\"user_id\\\":\\\"v%d\\\",\\\"candidates\\\":[%s],\\\"k\\\":2}\"\n", n, c
    printf "write-out = \"\\n\"\n"
    c = ""; nc = 0
}' "$D/ctr_world.csv" >"$D/rank_requests.curl"
send "$D/rank_requests.curl" "$D/rank_answers.jsonl"
awk -v base="$BASE" -v labels="$D/rank_labels.tsv" "$AWK_EVENTS"'
BEGIN { while ((getline l < labels) > 0) { split(l, f, "\t"); label[f[1]] = f[2] } }
/^$/ { next }
{
    rid = rid_of($0)
    if (rid == "") { print "demo: no request_id in " $0 > "/dev/stderr"; exit 1 }
    visits++
    s = $0
    while (match(s, /"item_id":"[^"]*"/)) {
        item = substr(s, RSTART + 11, RLENGTH - 12)
        s = substr(s, RSTART + RLENGTH)
        if (label[item] == 1) { ev(rid, "acquisition", item); break }
    }
}
END { flush() }' "$D/rank_answers.jsonl" >"$D/rank_events.curl" || die "unexpected /v1/rank answers in $D/rank_answers.jsonl"
send "$D/rank_events.curl" "$D/rank_events.jsonl"
N=$(accepted "$D/rank_events.jsonl")
echo "$(grep -c . "$D/rank_answers.jsonl") requests to /v1/rank, $N events accepted"

# One line per arm of the report $1 (GET /v1/experiments/NAME), then the trust checks.
summary() {
    sed 's/"history":.*//' "$1" | awk '
    function num(s, key,   v) {
        if (!match(s, "\"" key "\":[^,}]*")) return "?"
        v = substr(s, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
        gsub(/"/, "", v)
        return v
    }
    function pct(x) { return x == "null" || x == "?" ? x : sprintf("%+.1f%%", 100 * x) }
    {
        a = $0
        sub(/^.*"arms":\[/, "", a)
        sub(/\],"srm":.*$/, "", a)
        n = split(a, arm, /\{"name":"/)
        for (i = 2; i <= n; i++) {
            s = arm[i]
            name = substr(s, 1, index(s, "\"") - 1)
            rate = match(s, /"rate_per_impression":\{"value":[^,}]*/) ? substr(s, RSTART + 31, RLENGTH - 31) : "?"
            line = sprintf("  %-8s version %s: %s users, %s impressions, %s acquisitions, rate %s", name,
                           num(s, "version"), num(s, "units"), num(s, "impressions"), num(s, "acquisitions"),
                           rate == "null" || rate == "?" ? rate : sprintf("%.4f", rate))
            if (match(s, /"relative":\{"value":[^,]*,"ci":\[[^]]*\]/)) {
                r = substr(s, RSTART, RLENGTH)
                v = r; sub(/^"relative":\{"value":/, "", v); sub(/,.*/, "", v)
                lo = r; sub(/^.*"ci":\[/, "", lo); hi = lo; sub(/,.*/, "", lo); sub(/^[^,]*,/, "", hi); sub(/\]/, "", hi)
                p = num(s, "p")
                line = line sprintf(", lift %s [%s, %s], p %s", pct(v), pct(lo), pct(hi), p == "null" ? p : sprintf("%.2g", p))
            } else line = line " (control)"
            print line
        }
        srm = match($0, /"srm":\{[^}]*\}/) ? substr($0, RSTART, RLENGTH) : ""
        p = num(srm, "p")
        printf "  SRM p %s (mismatch %s), users in several arms %s\n", p == "null" ? p : sprintf("%.2g", p), num(srm, "mismatch"),
               num($0, "multi_arm_units")
    }'
}

say "the reports (GET /v1/experiments/NAME; lift: relative, of the acquisitions per impression, 95% interval)"
for x in next-demo rank-demo; do
    printf '\n$ curl -s %s/v1/experiments/%s | (summary)\n' "$BASE" "$x"
    curl -s "$BASE/v1/experiments/$x" >"$D/report_$x.json" || die "GET /v1/experiments/$x failed"
    summary "$D/report_$x.json"
done
echo
echo "the same as a page: http://$BASE/ui/experiments/next-demo (and .../rank-demo)"

say "export the events as training files, retrain, publish into the served snapshots"
echo "\$ recd events export --state $D/state --out $D/clicks.tsv --rows $D/rows.csv"
"$RECD" events export --state "$D/state" --out "$D/clicks.tsv" --rows "$D/rows.csv" || die "recd events export failed"
# The export's rows put the model's input columns first, then the label: the W&D config's columns, in order.
COLUMNS=$(head -n 1 "$D/rows.csv" | sed 's/^/["/; s/,/","/g; s/$/"]/')
# The held-out CTR rows in the same column order (label last) as the test set.
awk -F, -v OFS=, '{ l = $1; for (i = 1; i < NF; i++) $i = $(i + 1); $NF = l; print }' "$D/ctr_test.csv" >"$D/ctr_test_rows.csv"
# The click file has an acquisition as a line after the click on the same item: `recd train --data F` drops
# such immediate repeats itself (data.drop_repeats), `--train F` takes a file as it is, so drop them here.
awk -F'\t' 'NR == 1 || $1 != s || $2 != i { print } { s = $1; i = $2 }' "$D/clicks.tsv" >"$D/clicks_train.tsv"
echo
echo "\$ recd train gru4rec -c configs/gru4rec.json --train $D/clicks_train.tsv --test $D/split/test.tsv --out $D/snapshots --layers '[64]' ..."
"$RECD" train gru4rec -c configs/gru4rec.json --train "$D/clicks_train.tsv" --test "$D/split/test.tsv" --out "$D/snapshots" \
    --quiet --layers '[64]' --epochs 3 --n_sample 256 --batch_size 32 --data.item_col item_id \
    --data.time_col timestamp 2>"$D/retrain_gru4rec.log" ||
    { cat "$D/retrain_gru4rec.log" >&2; die "retraining GRU4Rec failed"; }
echo "\$ recd train widedeep -c bench/demo_ctr.json --columns '$COLUMNS' --train $D/rows.csv --test $D/ctr_test_rows.csv --out $D/snapshots"
"$RECD" train widedeep -c bench/demo_ctr.json --columns "$COLUMNS" --train "$D/rows.csv" --test "$D/ctr_test_rows.csv" \
    --out "$D/snapshots" 2>"$D/retrain_widedeep.log" ||
    { cat "$D/retrain_widedeep.log" >&2; die "retraining Wide & Deep failed"; }
grep 'widedeep auc=' "$D/retrain_widedeep.log" || true

say "waiting for the server to swap in the new versions (GET /v1/models)"
i=0
while :; do
    curl -s "$BASE/v1/models" >"$D/models.json" || die "GET /v1/models failed"
    g=$(grep -c '"name":"gru4rec","loaded":true,"type":"gru4rec","version":"2"' "$D/models.json" || true)
    w=$(grep -c '"name":"widedeep","loaded":true,"type":"widedeep","version":"2"' "$D/models.json" || true)
    [ "$g" = 1 ] && [ "$w" = 1 ] && break
    i=$((i + 1))
    [ $i -lt 300 ] || die "the server did not swap in gru4rec/2 and widedeep/2 within 30 s (see $D/serve.log)"
    sleep 0.1
done
grep -o '"name":"[^"]*","loaded":true,"type":"[^"]*","version":"[^"]*","loaded_at":"[^"]*"' "$D/models.json" |
    sed 's/"name":"\([^"]*\)".*"version":"\([^"]*\)","loaded_at":"\([^"]*\)"/  \1 serves version \2 (loaded at \3)/'
echo "next-demo's gru4rec arm and rank-demo's latest arm now answer with version 2; rank-demo's v1 stays pinned"

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
