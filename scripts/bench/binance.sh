#!/usr/bin/env bash
# The Binance market data benchmark (issue 14): a loopback websocket server replays a
# capture of Binance's combined stream as fast as the client reads it, and a whole
# `ledger run` (shadow mode: sma-cross on the paper venue, nothing sent) decodes and
# records every message; timed with /usr/bin/time -v (wall clock, peak RSS). Two
# sizes: the test fixture's slice (4,000 lines) and the whole capture (41,249 lines).
#
#   scripts/bench/binance.sh [WORK_DIR]        # default /tmp/ledger-bench
#
# Environment:
#   LEDGER_BIN   a ledger binary to use instead of building this checkout
#   REPLAY_BIN   the binance_replay example binary (default: built here)
#   RUNS         samples per size (default 1), each its own server and data directory
#
# Prints a Markdown table, a row per sample: messages sent, ticks recorded, events, wall
# time, CPU time (user + system), messages/s (messages sent over the ledger process's
# wall time, startup included), peak RSS, and the 1-minute load average before it.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work_dir=${1:-/tmp/ledger-bench}
source "$here/lib.sh"

step="start"
die() {
  echo "binance bench: FAILED at step '$step': $*" >&2
  exit 1
}
trap 'echo "binance bench: FAILED at step $step (line $LINENO, exit $?)" >&2' ERR

bench_dirs binance-logs

step="build"
if [[ -z ${LEDGER_BIN:-} || -z ${REPLAY_BIN:-} ]]; then
  build_with_example binance_replay
fi
ledger=${LEDGER_BIN:-$repo/target/release/ledger}
replay=${REPLAY_BIN:-$repo/target/release/examples/binance_replay}

captures=(
  "$repo/fixtures/binance/btcusdt-rawfeed-20240808-first4000.gz"
  "${CAPTURE:-$repo/../shared/data/hftbacktest_binance_spot_BTCUSDT_rawfeed_20240808.gz}"
)

echo "| capture | messages | ticks recorded | events | wall s | CPU s | messages/s | peak RSS MiB | load |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for capture in "${captures[@]}"; do
  [[ -f $capture ]] || die "no capture $capture"
  messages=$(zcat -f "$capture" | grep -c .)
  for sample in $(seq "${RUNS:-1}"); do
    name=$(basename "$capture" .gz)-$sample
    step="serve $name"
    "$replay" "$capture" 0 >"$logs/$name.url" 2>"$logs/$name.server.err" &
    server=$!
    for _ in $(seq 100); do [[ -s $logs/$name.url ]] && break; sleep 0.1; done
    url=$(head -n 1 "$logs/$name.url")
    [[ $url == ws://* ]] || die "the replay server did not start (see $logs/$name.server.err)"
    config=$logs/$name.toml
    cat >"$config" <<TOML
[binance]
symbols = ["BTCUSDT"]
streams = ["trade", "bookTicker"]
ws_url = "$url"
max_reconnects = 0

[provider]
kind = "rules"
strategy = "sma-cross"
params = { fast = 20, slow = 60 }
TOML
    data=$logs/$name.ledger
    step="run $name"
    load=$(cut -d ' ' -f 1 /proc/loadavg)
    timed "$name" "$ledger" --data-dir "$data" run --config "$config"
    wait "$server"
    cpu_s=$(awk -F': ' '/User time|System time/ { s += $2 } END { print s }' "$logs/$name.time")
    step="count $name"
    "$ledger" --data-dir "$data" events --run 1 --json >"$logs/$name.events.jsonl"
    events=$(wc -l <"$logs/$name.events.jsonl")
    ticks=$(grep -c '"MarketTick"' "$logs/$name.events.jsonl")
    echo "| $name | $messages | $ticks | $events | $(fmt "$wall_s" 2) | $(fmt "$cpu_s" 2) | $(fmt "$(calc "$messages / $wall_s")" 0) | $(mib "$rss_kb") | $load |"
  done
done
