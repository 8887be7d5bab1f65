#!/bin/sh
# bench/gru4rec_globo.sh - GRU4Rec on the Globo.com news sessions (issue 3): split, train, evaluate.
#
# Runs from a fresh clone that sits beside ../shared (the data is looked up relative to this script:
# "$(dirname "$0")/../../shared/data/globo-news-sessions", or $RECD_SHARED/data/...). Builds bin/recd if
# needed, works in a temporary folder (removed at the end unless KEEP=1), and prints one line per model:
#   gru4rec-bprmax recall@20=... mrr@20=... recall@10=... mrr@10=... recall@5=... mrr@5=... events/s=... epochs=1
#   gru4rec-xe     ... epochs=2
#   recentpop recall@20=...      pop recall@20=...
# Environment: EPOCHS_BPR (default 1), EPOCHS_XE (default 2), SEED (default 42), THREADS (BLAS threads,
# default 1), MODELS (default "bprmax xe recentpop pop"), RECD (binary to use), KEEP=1 (keep the temp dir).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
shared=${RECD_SHARED:-"$root/../shared"}
data="$shared/data/globo-news-sessions/clicks.csv.gz"
if [ ! -f "$data" ]; then
    echo "gru4rec_globo.sh: dataset not found: $data (set RECD_SHARED to the folder holding data/)" >&2
    exit 1
fi
EPOCHS_BPR=${EPOCHS_BPR:-1}
EPOCHS_XE=${EPOCHS_XE:-2}
SEED=${SEED:-42}
THREADS=${THREADS:-1}
MODELS=${MODELS:-"bprmax xe recentpop pop"}
RECD=${RECD:-"$root/bin/recd"}
if [ ! -x "$RECD" ]; then
    echo "gru4rec_globo.sh: building $RECD" >&2
    make -C "$root" -j2 >&2
fi
tmp=$(mktemp -d /tmp/gru4rec-globo.XXXXXX)
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi; }
trap cleanup EXIT INT TERM

# The split of issue 3: T = 2017-10-17 00:00 UTC-3, test window 1 day.
split_flags="--session-col session_id --item-col click_article_id --time-col click_timestamp \
  --split-time 1508209200000 --days 1"
# shellcheck disable=SC2086
"$RECD" split sessions --data "$data" --out "$tmp/split" $split_flags --quiet >&2
cols="--data.session_col session_id --data.item_col item_id --data.time_col timestamp"

for m in $MODELS; do
    case "$m" in
    bprmax)
        # shellcheck disable=SC2086
        "$RECD" train gru4rec -c "$root/configs/gru4rec.json" --data "$tmp/split/train.tsv" \
            --test "$tmp/split/test.tsv" $cols --epochs "$EPOCHS_BPR" --seed "$SEED" --threads "$THREADS" \
            --out "$tmp/snap-bpr" --name gru4rec-bprmax --quiet
        ;;
    xe)
        # shellcheck disable=SC2086
        "$RECD" train gru4rec -c "$root/configs/gru4rec-xe.json" --data "$tmp/split/train.tsv" \
            --test "$tmp/split/test.tsv" $cols --epochs "$EPOCHS_XE" --seed "$SEED" --threads "$THREADS" \
            --out "$tmp/snap-xe" --name gru4rec-xe --quiet
        ;;
    recentpop | pop)
        "$RECD" eval "$m" --train "$tmp/split/train.tsv" --test "$tmp/split/test.tsv" --quiet
        ;;
    *)
        echo "gru4rec_globo.sh: unknown model '$m'" >&2
        exit 2
        ;;
    esac
done
