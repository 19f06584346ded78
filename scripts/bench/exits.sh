#!/usr/bin/env bash
# What protective exits cost a backtest, as a user meets it: the `ledger` binary on N
# one-minute BTC-PERP bars (the whole-process benchmark's series and strategy,
# scripts/bench/btc-sma.toml), persisted, with and without exits on every entry
# (`--stop-loss-pct 0.01 --take-profit-pct 0.02 --trailing-stop-pct 0.005`: a trailing
# stop amended on most bars a position is open), each process timed with /usr/bin/time -v.
#
#   scripts/bench/exits.sh [WORK_DIR]        # default /tmp/ledger-bench
#
# Environment: SIZES (bars, default "1000000 10000000"), REPEAT (samples per variant, the
# least wall time reported; default 2), LEDGER_BIN (a binary instead of building this
# checkout). Prints a Markdown table; logs in WORK_DIR/exits-logs-<UTC time>/.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work_dir=${1:-/tmp/ledger-bench}
sizes=${SIZES:-1000000 10000000}
repeat=${REPEAT:-2}
python=${PYTHON:-python3}
exits=(--stop-loss-pct 0.01 --take-profit-pct 0.02 --trailing-stop-pct 0.005)

step="start"
die() {
  echo "exits: FAILED at step '$step': $*" >&2
  exit 1
}
mkdir -p "$work_dir"
work_dir=$(cd "$work_dir" && pwd)
logs=$work_dir/exits-logs-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$logs"
# shellcheck source=scripts/bench/lib.sh
source "$here/lib.sh"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing: apt-get install -y time"

step="build"
if [[ -n ${LEDGER_BIN:-} ]]; then
  ledger=$LEDGER_BIN
else
  (cd "$repo" && cargo build --release --locked -p ledger-cli) || die "cargo build failed"
  ledger=${CARGO_TARGET_DIR:-$repo/target}/release/ledger
fi

echo "| variant | bars | wall s | bars/s | peak RSS MiB | events | trades | exits filled | final equity |"
echo "|---|---|---|---|---|---|---|---|---|"
for bars in $sizes; do
  step="series $bars"
  series=$("$python" "$here/make-series.py" --work-dir "$work_dir" "$bars") || die "make-series.py failed"
  for variant in plain exits; do
    flags=()
    [[ $variant == exits ]] && flags=("${exits[@]}")
    best_wall="" best_rss=""
    for sample in $(seq "$repeat"); do
      step="$variant $bars #$sample"
      dir=$work_dir/exits-data
      rm -rf "$dir"
      timed "$variant-$bars-$sample" "$ledger" --data-dir "$dir" replay --config "$here/btc-sma.toml" \
        --data "$series" "${flags[@]}"
      if [[ -z $best_wall ]] || awk -v a="$wall_s" -v b="$best_wall" 'BEGIN { exit !(a < b) }'; then
        best_wall=$wall_s best_rss=$rss_kb best_log=$logs/$variant-$bars-$sample.out
      fi
    done
    step="report $variant $bars"
    report=$("$ledger" --data-dir "$dir" report --run 1 --json)
    events=$("$ledger" --data-dir "$dir" runs --json | "$python" -c 'import json,sys; print(json.loads(sys.stdin.readline())["event_count"])')
    trades=$("$python" -c 'import json,sys; print(json.loads(sys.argv[1])["trades"])' "$report")
    equity=$("$python" -c 'import json,sys; print(json.loads(sys.argv[1])["equity_final"])' "$report")
    filled=$("$ledger" --data-dir "$dir" report --run 1 --trades |
      awk -F, 'NR > 1 && ($NF == "stop_loss" || $NF == "take_profit" || $NF == "trailing_stop") { n++ } END { print n + 0 }')
    echo "| $variant | $bars | $best_wall | $(fmt "$(calc "$bars / $best_wall")") | $(mib "$best_rss") | $events | $trades | $filled | $equity |"
    rm -rf "$dir"
  done
done
