#!/usr/bin/env bash
# Tick-to-order-sent latency of `ledger run` on Binance (issue 14), on loopback:
# adapters/examples/binance_latency.rs serves the replayed capture over a websocket and a
# minimal Binance REST endpoint in one process, stamping each message's send and each
# order's arrival on one monotonic clock; a whole `ledger run` with trading enabled
# (sma-cross 5/20 on the rules provider: it trades often) sends its market orders there.
# Each order is joined through the recorded events (its causation chain) to the tick that
# caused it and that tick to the message that carried it; the decision provider's
# recorded time is taken out. Two paces: one message every INTERVAL_US microseconds, and
# flat out (queueing then counts).
#
#   scripts/bench/binance-latency.sh [WORK_DIR]        # default /tmp/ledger-bench
#
# Environment:
#   LEDGER_BIN    a ledger binary to use instead of building this checkout
#   LATENCY_BIN   the binance_latency example binary (default: built here)
#   CAPTURE       the capture (default: the whole 2024-08-08 BTCUSDT capture)
#   INTERVAL_US   the paced run's interval between messages (default 250)
#
# Prints a Markdown table: pace, orders joined, p50, p90, p99 and max in microseconds,
# the part of it from the message's send to its cycle's start (the cycle time the ledger
# records, on the wall clock: p50 and p99), the ledger process's wall time, CPU time and
# peak RSS, the load average before it.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work_dir=${1:-/tmp/ledger-bench}
source "$here/lib.sh"

step="start"
server=""
die() {
  echo "binance latency bench: FAILED at step '$step': $*" >&2
  exit 1
}
stop_server() {
  if [[ -n $server ]]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
}
trap 'echo "binance latency bench: FAILED at step $step (line $LINENO, exit $?)" >&2' ERR
trap stop_server EXIT

bench_dirs binance-latency

step="build"
if [[ -z ${LEDGER_BIN:-} || -z ${LATENCY_BIN:-} ]]; then
  build_with_example binance_latency
fi
ledger=${LEDGER_BIN:-$repo/target/release/ledger}
latency=${LATENCY_BIN:-$repo/target/release/examples/binance_latency}
capture=${CAPTURE:-$repo/../shared/data/hftbacktest_binance_spot_BTCUSDT_rawfeed_20240808.gz}
[[ -f $capture ]] || die "no capture $capture"

echo "| pace | orders | p50 us | p90 us | p99 us | max us | send to cycle p50 / p99 us | wall s | CPU s | peak RSS MiB | load |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for interval in "${INTERVAL_US:-250}" 0; do
  name=interval-$interval
  out=$logs/$name
  mkdir -p "$out"
  step="serve $name"
  "$latency" serve "$capture" "$interval" "$out" >"$out/urls" 2>"$out/server.err" &
  server=$!
  for _ in $(seq 100); do [[ -f $out/urls && $(wc -l <"$out/urls") -ge 2 ]] && break; sleep 0.1; done
  ws_url=$(sed -n 1p "$out/urls")
  rest_url=$(sed -n 2p "$out/urls")
  [[ $ws_url == ws://* && $rest_url == http://* ]] || die "the server did not start (see $out/server.err)"
  cat >"$out/config.toml" <<TOML
[binance]
symbols = ["BTCUSDT"]
streams = ["trade", "bookTicker"]
ws_url = "$ws_url"
rest_url = "$rest_url"
trading_enabled = true
max_reconnects = 0

[provider]
kind = "rules"
strategy = "sma-cross"
params = { fast = 5, slow = 20 }
TOML
  step="run $name"
  # The replay starts once the session is up (its control socket is there), so the
  # ledger's start-up (opening its store) is not counted as latency.
  (
    for _ in $(seq 3000); do [[ -S $out/ledger/control.sock ]] && break; sleep 0.01; done
    sleep 0.2
    touch "$out/go"
  ) &
  load=$(cut -d ' ' -f 1 /proc/loadavg)
  BINANCE_API_KEY=bench-key BINANCE_API_SECRET=bench-secret \
    timed "$name" "$ledger" --data-dir "$out/ledger" run --config "$out/config.toml"
  cpu_s=$(awk -F': ' '/User time|System time/ { s += $2 } END { print s }' "$logs/$name.time")
  for _ in $(seq 100); do [[ -s $out/sent.tsv ]] && break; sleep 0.1; done
  stop_server
  step="join $name"
  "$ledger" --data-dir "$out/ledger" events --run 1 --json >"$out/events.jsonl"
  summary=$("$latency" report "$capture" BTCUSDT "$out/events.jsonl" "$out")
  read -r _ orders _ _ _ _ p50 _ p90 _ p99 _ max _ c50 _ c99 <<<"$summary"
  pace=$([[ $interval == 0 ]] && echo "flat out" || echo "1 message / $interval us")
  echo "| $pace | $orders | $p50 | $p90 | $p99 | $max | $c50 / $c99 | $(fmt "$wall_s" 2) | $(fmt "$cpu_s" 2) | $(mib "$rss_kb") | $load |"
  echo "$summary" >"$out/summary.txt"
done
