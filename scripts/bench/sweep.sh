#!/usr/bin/env bash
# The sweep benchmark: `ledger sweep` and backtesting.py 0.6.6's `Backtest.optimize` on the
# same grid (SMA cross n1/fast = 5..30, n2/slow = 20..100 step 10, fast < slow: 222
# combinations) and the same data, in the same run, each timed whole with /usr/bin/time -v.
#
#   scripts/bench/sweep.sh [WORK_DIR]        # default /tmp/ledger-bench
#
# Data: fixtures/spy-daily-1998-2021.csv (5,849 daily bars, whole units, cash 100,000)
# and the 100,000-bar BTC-PERP minute series whole-process.sh makes (lot 0.001, cash
# 10,000,000). Needs the peer's venv and the series: run whole-process.sh once first (it
# makes both in WORK_DIR). LEDGER_BIN: a ledger binary instead of building this checkout;
# ROUNDS: samples of each (default 3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work_dir=${1:-/tmp/ledger-bench}
python=$work_dir/venv/bin/python
[ -x "$python" ] || { echo "sweep: no peer venv in $work_dir (run whole-process.sh first)" >&2; exit 1; }
if [ -z "${LEDGER_BIN:-}" ]; then
  (cd "$repo" && cargo build --release -p ledger-cli --quiet)
  LEDGER_BIN=$repo/target/release/ledger
fi
out=$work_dir/sweep-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"

timed() { # NAME CMD...: wall seconds and peak RSS (KiB) of CMD into $out/NAME.time
  local name=$1; shift
  /usr/bin/time -v -o "$out/$name.time" "$@" >"$out/$name.out" 2>"$out/$name.err" || { tail "$out/$name.err"; exit 1; }
  awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; w = s }
              /Maximum resident/ { r = $2 } END { printf "%s %.2f s, %d MiB\n", name, w, r / 1024 }' name="$name" "$out/$name.time"
}

spy=$repo/fixtures/spy-daily-1998-2021.csv
btc=$work_dir/btcperp_1m_100000.csv
grid=(--strategy sma-cross --param fast=5..30 --param slow=20..100:10 --constraint 'fast < slow' --rank sharpe)
cat >"$out/spy.toml" <<TOML
[account]
starting_cash = "100000"
[venue]
commission_rate = "0.001"
TOML
for round in $(seq 1 "${ROUNDS:-3}"); do
  echo "round $round"
  timed "ledger-spy-$round" "$LEDGER_BIN" --data-dir "$out/d" sweep --config "$out/spy.toml" --data "$spy" "${grid[@]}" --out "$out/spy.csv"
  timed "peer-spy-$round" "$python" "$here/sweep_peer.py" "$spy" 100000 1
  timed "ledger-btc-$round" "$LEDGER_BIN" --data-dir "$out/d" sweep --config "$here/btc-sma.toml" --data "$btc" "${grid[@]}" --out "$out/btc.csv"
  timed "peer-btc-$round" "$python" "$here/sweep_peer.py" "$btc" 10000000 0.001
done
grep -h "backtests of" "$out"/ledger-*.err | head -6
cat "$out"/peer-*.out
echo "raw files in $out"
