#!/bin/sh
# bench/gru4rec_globo.sh - GRU4Rec on the Globo.com news sessions (issue 3): split, train, evaluate.
#
# Runs from a fresh clone that sits beside ../shared (the data is looked up relative to this script:
# "$(dirname "$0")/../../shared/data/globo-news-sessions", or $RECD_SHARED/data/...). Builds bin/recd if
# needed, works in a temporary folder (removed at the end unless KEEP=1), and prints one line per model:
#   gru4rec-bprmax recall@20=... mrr@20=... recall@10=... mrr@10=... recall@5=... mrr@5=... events/s=... epochs=1
#   gru4rec-xe     ... epochs=2
#   itemknn recall@20=... mrr@20=... ... build_s=... nnz=...   (configs/itemknn.json; deterministic, one run)
#   recentpop recall@20=...      pop recall@20=...
# Environment: EPOCHS_BPR (default 1), EPOCHS_XE (default 2), SEED (default 42), THREADS (BLAS threads,
# default 1), MODELS (default "bprmax xe itemknn recentpop pop"), RECD (binary to use), KEEP=1 (keep the temp dir).
# SEEDS="42 1 2 3 4 5": train each model once per seed; prints a line per seed (gru4rec-xe-seed1 ...) and
# then the model's line with the MEDIAN of each figure over the seeds, followed by `seeds=N` and the range
# of recall@20 and mrr@20 (MRR@20 moves by about +-0.01 between seeds: compare medians, not one run).
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
SEEDS=${SEEDS:-$SEED}
THREADS=${THREADS:-1}
MODELS=${MODELS:-"bprmax xe itemknn recentpop pop"}
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

# Median of every key=value figure over the lines of file $2, printed as one line named $1.
median_line() {
    awk -v name="$1" '
    { for (i = 2; i <= NF; i++) if (split($i, kv, "=") == 2) {
          if (!(kv[1] in cnt)) { keys[++nk] = kv[1]; cnt[kv[1]] = 0 }
          v[kv[1], ++cnt[kv[1]]] = kv[2] + 0 } }
    END {
        out = name
        for (k = 1; k <= nk; k++) {
            key = keys[k]; n = cnt[key]
            for (i = 1; i <= n; i++) a[i] = v[key, i]
            for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
            med = (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
            lo[key] = a[1]; hi[key] = a[n]
            if (key == "events/s" || key == "epochs" || key == "predictions") out = out sprintf(" %s=%d", key, med)
            else out = out sprintf(" %s=%.4f", key, med)
        }
        printf "%s seeds=%d (median; recall@20 %.4f..%.4f, mrr@20 %.4f..%.4f)\n", out, NR,
            lo["recall@20"], hi["recall@20"], lo["mrr@20"], hi["mrr@20"]
    }' "$2"
}

# Train one GRU4Rec configuration for every seed: $1 name, $2 config, $3 epochs.
train_seeds() {
    n=0
    : >"$tmp/$1.lines"
    for s in $SEEDS; do n=$((n + 1)); done
    for s in $SEEDS; do
        label=$1
        [ "$n" -gt 1 ] && label="$1-seed$s"
        # shellcheck disable=SC2086
        "$RECD" train gru4rec -c "$2" --train "$tmp/split/train.tsv" --test "$tmp/split/test.tsv" $cols \
            --epochs "$3" --seed "$s" --threads "$THREADS" --out "$tmp/snap-$1-$s" --name "$label" --quiet |
            tee -a "$tmp/$1.lines"
    done
    if [ "$n" -gt 1 ]; then median_line "$1" "$tmp/$1.lines"; fi
}

for m in $MODELS; do
    case "$m" in
    bprmax)
        train_seeds gru4rec-bprmax "$root/configs/gru4rec.json" "$EPOCHS_BPR"
        ;;
    xe)
        train_seeds gru4rec-xe "$root/configs/gru4rec-xe.json" "$EPOCHS_XE"
        ;;
    itemknn)
        # shellcheck disable=SC2086
        "$RECD" train itemknn -c "$root/configs/itemknn.json" --train "$tmp/split/train.tsv" \
            --test "$tmp/split/test.tsv" $cols --threads "$THREADS" --out "$tmp/snap-itemknn" --quiet
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
