#!/bin/sh
# bench/ab_replay.sh - the Wide & Deep paper's online experiment, replayed offline: three arms (wide = the
# control, deep, wide & deep), each served by the Adult model bench/widedeep_adult.sh trains, and the held-out
# rows of adult.test as visits. Each visit is a new user assigned by recd (POST /v1/rank with "experiment");
# it ranks CANDIDATES random held-out rows, sees the top K, and acquires the first shown row whose label is
# positive (income >50K), posting an `acquisition` event. Then it prints recd's own report
# (GET /v1/experiments/adult): per arm units, acquisitions, rate, relative lift with its 95% interval, p, the
# always-valid interval, and the trust checks (SRM, units in several arms). See README "A/B replay".
#   sh bench/ab_replay.sh                 (from the repository root; RECD_BIN=path overrides bin/recd)
#   VISITS=30000 CANDIDATES=10 K=1 SEED=1 SNAPSHOTS=DIR sh bench/ab_replay.sh   (DIR: reuse trained models)
# Needs ../shared/data/uci-adult (RECD_SHARED overrides ../shared), curl, libcurl and jansson headers.
set -eu
# shellcheck source=bench/lib_serve.sh
. "$(dirname "$0")/lib_serve.sh"
DATA=${RECD_SHARED:-../shared}/data/uci-adult
VISITS=${VISITS:-20000}
CANDIDATES=${CANDIDATES:-10}
K=${K:-1}
SEED=${SEED:-1}
PORT=${PORT:-18941}
[ -x "$BIN" ] || { echo "ab_replay.sh: $BIN not built (make)" >&2; exit 1; }
[ -f "$DATA/adult.test" ] || { echo "ab_replay.sh: $DATA/adult.test absent" >&2; exit 1; }
serve_tmp ab-replay
SNAPSHOTS=${SNAPSHOTS:-$TMP/snaps}

cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -o "$TMP/ab_replay" bench/ab_replay.c \
  $(pkg-config --cflags --libs libcurl jansson) -lm
if [ ! -d "$SNAPSHOTS/widedeep" ] || [ ! -d "$SNAPSHOTS/wide" ] || [ ! -d "$SNAPSHOTS/deep" ]; then
  echo "training the three Adult models (bench/widedeep_adult.sh, seed 1):"
  SNAPSHOTS="$SNAPSHOTS" SEEDS=1 RECD_BIN="$BIN" sh bench/widedeep_adult.sh
fi
cat > "$TMP/recd.json" <<JSON
{"http":{"bind":"127.0.0.1","port":$PORT},
 "snapshots":{"root":"$SNAPSHOTS","models":["widedeep","wide","deep"]},
 "state":{"dir":"$TMP/state"}, "events":{"history_s":1},
 "experiments":[{"name":"adult","salt":"adult-replay-$SEED","unit":"user_id","control":"wide",
   "arms":[{"name":"wide","model":"wide","share":0.3334},{"name":"deep","model":"deep","share":0.3333},
           {"name":"wide_deep","model":"widedeep","share":0.3333}]}],
 "log_level":"warn"}
JSON
serve_start "$TMP/serve.log" -c "$TMP/recd.json"
"$TMP/ab_replay" "$PORT" "$DATA/adult.test" adult "$VISITS" "$CANDIDATES" "$K" "$SEED"
