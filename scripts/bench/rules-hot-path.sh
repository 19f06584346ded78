#!/usr/bin/env bash
# The rules provider's hot path before and after a change (issue 12: the engine now builds
# a CycleContext per tick and checks the LLM guards): two `ledger` binaries, BASE_BIN and
# LEDGER_BIN, each run `ledger replay` of the SMA cross (btc-sma.toml) on the same BTC-PERP
# minute series, --in-memory and persisted, alternating A/B/A/B so the machine's noise falls
# on both alike. Every process is timed with /usr/bin/time -v (wall clock, peak RSS).
#
#   BASE_BIN=/path/to/old/ledger LEDGER_BIN=target/release/ledger scripts/bench/rules-hot-path.sh [WORK_DIR]
#
# Environment: SIZES (default "1000000 5000000"), REPEATS (default 3), PYTHON (python3).
# Prints one line per process (variant, size, mode, repeat, wall s, bars/s, peak RSS MiB)
# and the median wall time per variant, size and mode.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
work_dir=${1:-/tmp/ledger-bench}
python=${PYTHON:-python3}
sizes=${SIZES:-1000000 5000000}
repeats=${REPEATS:-3}
config=$here/btc-sma.toml
die() { echo "rules-hot-path: $step: $*" >&2; exit 1; }
step="setup"
[[ -x ${BASE_BIN:-} && -x ${LEDGER_BIN:-} ]] || die "set BASE_BIN and LEDGER_BIN to two ledger binaries"
logs=$work_dir/hot-path-logs
mkdir -p "$logs"
# shellcheck source=lib.sh
source "$here/lib.sh"

results=$work_dir/hot-path-$(date -u +%Y%m%dT%H%M%SZ).txt
for n in $sizes; do
  step="series $n"
  file=$("$python" "$here/make-series.py" --work-dir "$work_dir" "$n") || die "make-series.py $n failed"
  for mode in in-memory persisted; do
    for r in $(seq 1 "$repeats"); do
      for variant in base new; do
        bin=$BASE_BIN
        [[ $variant == new ]] && bin=$LEDGER_BIN
        step="$variant $n $mode #$r"
        data_dir=$work_dir/hot-path-ledger
        rm -rf "$data_dir"
        args=(--data-dir "$data_dir" replay --config "$config" --data "$file")
        [[ $mode == in-memory ]] && args+=(--in-memory)
        timed "$variant-$n-$mode-$r" "$bin" "${args[@]}"
        echo "$variant $n $mode $r $wall_s $(fmt "$(calc "$n / $wall_s")") $(mib "$rss_kb")" | tee -a "$results"
      done
    done
  done
done
rm -rf "$work_dir/hot-path-ledger"
echo "median wall s (variant size mode):"
sort -k1,1 -k2,2n -k3,3 -k5,5n "$results" |
  awk '{ k = $1 " " $2 " " $3; v[k] = v[k] " " $5; c[k]++ }
       END { for (k in v) { split(substr(v[k], 2), a, " "); print k, a[int((c[k] + 1) / 2)] } }' | sort
