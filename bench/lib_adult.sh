# shellcheck shell=sh
# bench/lib_adult.sh - the UCI Adult Wide & Deep pieces of bench/rank_adult.sh and bench/events_http.sh,
# sourced after `set -eu` and bench/lib_serve.sh (for BIN):
#   . "$(dirname "$0")/lib_adult.sh"
# Sets DATA to the dataset folder ($RECD_SHARED/data/uci-adult, RECD_SHARED defaulting to ../shared).
#   adult_widedeep ROOT   train the Adult widedeep model (configs/widedeep_adult.json, 10 epochs) into ROOT,
#                         unless ROOT/widedeep already exists
#   adult_rank_body       print the 100-candidate POST /v1/rank request without its opening brace, so that
#                         the caller puts its own members first ("user_id", "experiment" or "model"): a
#                         person as context, k 10, 100 candidate jobs (occupation x hours x workclass)
DATA=${RECD_SHARED:-../shared}/data/uci-adult

adult_widedeep() {
    if [ ! -d "$1/widedeep" ]; then
        "$BIN" train widedeep -c configs/widedeep_adult.json --train "$DATA/adult.data" --test "$DATA/adult.test" \
            --epochs 10 --eval_every 0 --out "$1" 2>/dev/null
    fi
}

adult_rank_body() {
    awk 'BEGIN {
  split("Tech-support Craft-repair Other-service Sales Exec-managerial Prof-specialty Handlers-cleaners Machine-op-inspct Adm-clerical Farming-fishing", occ, " ")
  split("Private Self-emp-not-inc Local-gov State-gov Federal-gov", wc, " ")
  printf "\"k\":10,\"context\":{\"age\":41,\"education\":\"Bachelors\",\"education_num\":13,"
  printf "\"marital_status\":\"Married-civ-spouse\",\"relationship\":\"Husband\",\"capital_gain\":0,\"capital_loss\":0},\"candidates\":["
  for (i = 0; i < 100; i++) {
    printf "%s{\"item_id\":\"job%d\",\"features\":{\"occupation\":\"%s\",\"hours_per_week\":%d,\"workclass\":\"%s\"}}",
      (i ? "," : ""), i, occ[i % 10 + 1], 20 + (i * 7) % 45, wc[int(i / 10) % 5 + 1]
  }
  printf "]}"
}'
}
