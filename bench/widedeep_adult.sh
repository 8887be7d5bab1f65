#!/bin/sh
# bench/widedeep_adult.sh - Wide & Deep on UCI Adult (train adult.data, evaluate adult.test) with the
# TensorFlow census example's columns (configs/widedeep_adult*.json): the three variants, 5 seeds each.
# Prints one line per variant: mean over the seeds, then the spread (sd, min..max of AUC) and the median
# training time of the 20 epochs.
#   sh bench/widedeep_adult.sh            (from the repository root; RECD_BIN=path overrides bin/recd)
#   SEEDS="1 2 3" sh bench/widedeep_adult.sh
#   SNAPSHOTS=DIR SEEDS=1 sh bench/widedeep_adult.sh   (keep the snapshots: DIR/widedeep, DIR/wide, DIR/deep;
#                                                     bench/ab_replay.sh serves them as three arms)
set -eu
BIN=${RECD_BIN:-bin/recd}
DATA=${RECD_SHARED:-../shared}/data/uci-adult
SEEDS=${SEEDS:-"1 2 3 4 5"}
[ -x "$BIN" ] || { echo "widedeep_adult.sh: $BIN not built (make)" >&2; exit 1; }
[ -f "$DATA/adult.data" ] || { echo "widedeep_adult.sh: $DATA/adult.data absent" >&2; exit 1; }
TMP=$(mktemp -d /tmp/wd-adult-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
SNAPS=${SNAPSHOTS:-$TMP/snaps}
for variant in widedeep wide deep; do
  case $variant in
    widedeep) cfg=configs/widedeep_adult.json ;;
    *) cfg=configs/widedeep_adult_$variant.json ;;
  esac
  : > "$TMP/$variant.txt"
  for seed in $SEEDS; do
    "$BIN" train widedeep -c "$cfg" --train "$DATA/adult.data" --test "$DATA/adult.test" --seed "$seed" \
      --eval_every 0 --name "$variant" --out "$SNAPS" 2>"$TMP/log" >> "$TMP/$variant.txt" || { cat "$TMP/log" >&2; exit 1; }
  done
  awk -v v="$variant" '
    { for (i = 2; i <= NF; i++) { split($i, kv, "="); x[kv[1], NR] = kv[2] } }
    END {
      n = NR
      split("auc accuracy logloss train_s", k, " ")
      for (j = 1; j <= 4; j++) { s = 0; for (r = 1; r <= n; r++) s += x[k[j], r]; m[k[j]] = s / n
        ss = 0; for (r = 1; r <= n; r++) ss += (x[k[j], r] - m[k[j]])^2; sd[k[j]] = n > 1 ? sqrt(ss / (n - 1)) : 0 }
      lo = 1; hi = 0; for (r = 1; r <= n; r++) { a = x["auc", r]; if (a < lo) lo = a; if (a > hi) hi = a }
      # median training time
      for (r = 1; r <= n; r++) t[r] = x["train_s", r]
      for (a = 1; a <= n; a++) for (b = a + 1; b <= n; b++) if (t[b] < t[a]) { y = t[a]; t[a] = t[b]; t[b] = y }
      med = n % 2 ? t[(n + 1) / 2] : (t[n / 2] + t[n / 2 + 1]) / 2
      printf "%s auc=%.4f accuracy=%.4f logloss=%.4f  (%d seeds; sd auc %.4f accuracy %.4f logloss %.4f; auc %.4f..%.4f; 20-epoch training median %.1fs)\n",
        v, m["auc"], m["accuracy"], m["logloss"], n, sd["auc"], sd["accuracy"], sd["logloss"], lo, hi, med
    }' "$TMP/$variant.txt"
done
