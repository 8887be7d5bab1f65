#!/bin/sh
# bench/rating_ml1m.sh - the AutoRec table (Sedhain et al., WWW 2015) as recd trains it: every rating
# model on MovieLens 1M, then on MovieLens 100K, with the paper's protocol (DESIGN.md section 7): a
# random 90/10 split of all ratings per seed, 10% of the training part held out to choose the epoch,
# default rating 3 for a test rating whose user or item has no training rating, predictions not clipped
# (the clipped RMSE is printed beside). One line per model and data set, means over the seeds:
#   i-autorec rmse=0.8290 mae=0.6512 sd=0.0012 rmse_clipped=0.8270 train_s=212.3 seeds=5 paper=0.831
# sd is the sample standard deviation of the per-seed RMSEs; train_s the mean training time (the
# trainer's own figure: reading and splitting excluded).
#   sh bench/rating_ml1m.sh                      (from the repository root; RECD_BIN overrides bin/recd)
#   MODELS="biasedmf i-autorec" SEEDS="1 2 3" SETS="ml1m" sh bench/rating_ml1m.sh
# Each model LABEL trains with configs/LABEL.json (configs/LABEL-ml100k.json on ML-100K when it
# exists). Per-seed result lines go to stderr as they come; snapshots to a temp folder, removed at the
# end. Needs ../shared/data/movielens-1m and movielens-100k (RECD_SHARED overrides ../shared): a data
# set that is absent is skipped, saying so. ML-10M and Netflix (the paper's other columns) are not
# available here. Takes long: about an hour for every model over 5 seeds of ML-1M on 2 cores.
set -eu
BIN=${RECD_BIN:-bin/recd}
SHARED=${RECD_SHARED:-../shared}
MODELS=${MODELS:-"i-autorec u-autorec biasedmf i-rbm u-rbm llorma"}
SEEDS=${SEEDS:-"1 2 3 4 5"}
SETS=${SETS:-"ml1m ml100k"}
THREADS=${THREADS:-2}
[ -x "$BIN" ] || { echo "rating_ml1m.sh: $BIN not built (make)" >&2; exit 1; }
TMP=$(mktemp -d /tmp/rating-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# The model type of a label and the paper's ML-1M figure (- where the paper has none).
type_of() {
  case "$1" in
    i-autorec|u-autorec) echo autorec ;;
    i-rbm|u-rbm) echo rbm ;;
    *) echo "$1" ;;
  esac
}
paper_of() {
  case "$1" in
    i-autorec) echo 0.831 ;; u-autorec) echo 0.874 ;; biasedmf) echo 0.845 ;;
    i-rbm) echo 0.854 ;; u-rbm) echo 0.881 ;; llorma) echo 0.833 ;; *) echo - ;;
  esac
}
# field NAME LINE: the value of NAME=VALUE in a result line
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }

for set in $SETS; do
  case "$set" in
    ml1m) data=$SHARED/data/movielens-1m/ratings-5fold; suffix= ;;
    ml100k) data=$SHARED/data/movielens-100k/u.data; suffix=-ml100k ;;
    *) echo "rating_ml1m.sh: unknown set $set (ml1m, ml100k)" >&2; exit 2 ;;
  esac
  if [ ! -e "$data" ]; then
    echo "# $set: skipped ($data is absent)"
    continue
  fi
  echo "# $set: $data, seeds $SEEDS"
  for label in $MODELS; do
    cfg=configs/$label$suffix.json
    [ -f "$cfg" ] || cfg=configs/$label.json
    if [ ! -f "$cfg" ]; then
      echo "$label skipped: no $cfg"
      continue
    fi
    type=$(type_of "$label")
    : > "$TMP/lines"
    for seed in $SEEDS; do
      line=$("$BIN" train "$type" -c "$cfg" --data "$data" --split_seed "$seed" --seed "$seed" \
               --threads "$THREADS" --name "$label" --out "$TMP/snaps" --quiet) || {
        echo "$label: training failed for seed $seed" >&2
        exit 1
      }
      echo "$set seed=$seed $line" >&2
      printf '%s %s %s %s\n' "$(field rmse "$line")" "$(field mae "$line")" \
        "$(field rmse_clipped "$line")" "$(field train_s "$line")" >> "$TMP/lines"
      rm -rf "$TMP/snaps"
    done
    awk -v label="$label" -v paper="$(paper_of "$label")" -v set="$set" '
      { r[NR] = $1; sr += $1; sm += $2; sc += $3; st += $4 }
      END {
        n = NR; m = sr / n; v = 0
        for (i = 1; i <= n; i++) v += (r[i] - m) ^ 2
        sd = n > 1 ? sqrt(v / (n - 1)) : 0
        printf "%s rmse=%.4f mae=%.4f sd=%.4f rmse_clipped=%.4f train_s=%.1f seeds=%d", label, m, sm / n, sd, sc / n, st / n, n
        if (set == "ml1m") printf " paper=%s", paper
        printf "\n"
      }' "$TMP/lines"
  done
done
