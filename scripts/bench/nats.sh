#!/usr/bin/env bash
# The NATS benchmark (issue 11), every process timed from outside with /usr/bin/time -v:
#
# 1. Publishing: `ledger publish` of a ledger of about 1,000,000 events (a backtest of
#    BTC-PERP minute bars, scripts/bench/btc-sma.toml) to a fresh nats-server, beside raw
#    async-nats publishing of the same messages (adapters/examples/nats_raw.rs: subjects,
#    headers and JSON payloads prepared in memory first, then only published, in the same
#    windows of 1,000 acks) to another fresh server, in the same run.
# 2. Lag: `ledger run --nats` paced at about EVENTS_PER_S events/s while `ledger project`
#    follows the stream on its own; the projection reports, per event, the time it folded
#    it minus the event's ts_recorded (the wall-clock time of its cycle).
#
#   scripts/bench/nats.sh [WORK_DIR]        # default /tmp/ledger-bench-nats
#
# Environment: BARS (default 322581: about 1.02 M events), LAG_BARS (default 30000),
# SPEED (default 1000000: 60 us per one-minute bar, about 10,000 events/s here),
# LAG_LEDGER_DIR (the paced run's data dir; default /dev/shm/ledger-nats-lag: a paced run
# flushes, fsync included, after every cycle, and this VM's disk fsync of about 0.5 ms
# would cap the run near 5,000 events/s; the stream's own store stays on disk), LEDGER_BIN,
# NATS_SERVER.
# Prints a Markdown table.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work=${1:-/tmp/ledger-bench-nats}
bars=${BARS:-322581}
lag_bars=${LAG_BARS:-30000}
speed=${SPEED:-1000000}
lag_dir=${LAG_LEDGER_DIR:-/dev/shm/ledger-nats-lag}
config=$here/btc-sma.toml
mkdir -p "$work"
work=$(cd "$work" && pwd)
logs=$work/logs
rm -rf "$logs" "$work"/ledger-* "$work"/js-* "$work"/*.state "$lag_dir"
mkdir -p "$logs"

die() { echo "nats bench: $*" >&2; exit 1; }
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install -y time)"

# timed NAME CMD...: /usr/bin/time -v; sets wall_s and rss_mib; output in $logs/NAME.*
timed() {
  local name=$1
  shift
  /usr/bin/time -v -o "$logs/$name.time" "$@" >"$logs/$name.out" 2>"$logs/$name.err" ||
    { tail -n 20 "$logs/$name.err" >&2; die "'$*' failed"; }
  wall_s=$(awk -F': ' '/Elapsed \(wall clock\) time/ { n = split($2, p, ":"); s = 0
             for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$logs/$name.time")
  rss_mib=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$logs/$name.time")
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

servers=()
stop_servers() { for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap stop_servers EXIT

# server NAME: starts a fresh nats-server with JetStream; sets url.
server() {
  local port
  port=$(free_port)
  "$nats_server" -a 127.0.0.1 -p "$port" -js -sd "$work/js-$1" >"$logs/server-$1.log" 2>&1 &
  servers+=($!)
  for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  url=nats://127.0.0.1:$port
}

echo "nats bench: building" >&2
(cd "$repo" && cargo build --release --locked -p ledger-cli && cargo build --release --locked -p ledger-adapters --example nats_raw) >&2
ledger=${LEDGER_BIN:-$repo/target/release/ledger}
raw=$repo/target/release/examples/nats_raw
nats_server=${NATS_SERVER:-$(bash "$repo/scripts/nats/server.sh")}
series=$(python3 "$here/make-series.py" --work-dir "$work" "$bars")
lag_series=$(python3 "$here/make-series.py" --work-dir "$work" "$lag_bars")

echo "nats bench: the ledger to publish ($bars bars)" >&2
"$ledger" --data-dir "$work/ledger-pub" replay --config "$config" --data "$series" >/dev/null 2>"$logs/replay.err"
events=$("$ledger" --data-dir "$work/ledger-pub" verify | sed -n 's/^ok: \([0-9]*\) events.*/\1/p')

echo "nats bench: publishing $events events" >&2
server raw
timed raw "$raw" "$work/ledger-pub" "$url"
raw_wall=$wall_s raw_rss=$rss_mib
raw_rate=$(sed -n 's/^raw: .*, \([0-9]*\) events\/s$/\1/p' "$logs/raw.out")
server publish
timed publish "$ledger" --data-dir "$work/ledger-pub" publish --nats "$url"
pub_wall=$wall_s pub_rss=$rss_mib
pub_rate=$(sed -n 's/.*events, \([0-9]*\) events\/s).*/\1/p' "$logs/publish.out")
grep -q "it holds seq 1..=$events " "$logs/publish.out" || die "publish did not end at seq $events: $(cat "$logs/publish.out")"

echo "nats bench: lag of a remote projection following a live run ($lag_bars bars at --speed $speed)" >&2
server lag
"$ledger" project --nats "$url" --durable bench --state "$work/lag.state" --idle 5s --lag \
  >"$logs/project.out" 2>"$logs/project.err" &
project=$!
timed run "$ledger" --data-dir "$lag_dir" run --config "$config" --data "$lag_series" --speed "$speed" --nats "$url"
run_wall=$wall_s run_rss=$rss_mib
wait "$project" || { cat "$logs/project.err" >&2; die "ledger project failed"; }
run_events=$("$ledger" --data-dir "$lag_dir" verify | sed -n 's/^ok: \([0-9]*\) events.*/\1/p')
lag_line=$(grep '^lag: ' "$logs/project.err")
run_rate=$(awk -v e="$run_events" -v w="$run_wall" 'BEGIN { printf "%.0f", e / w }')

cat <<TABLE
| measure | events | wall s | events/s | peak RSS MiB |
|---|---|---|---|---|
| raw async-nats publishing (nats_raw, publishing only) | $events | $raw_wall (whole process) | $raw_rate | $raw_rss |
| \`ledger publish\` (whole process) | $events | $pub_wall | $pub_rate | $pub_rss |
| \`ledger run --nats --speed $speed\` (data dir $lag_dir) | $run_events | $run_wall | $run_rate | $run_rss |

ledger publish / raw: $(awk -v a="$pub_rate" -v b="$raw_rate" 'BEGIN { printf "%.0f%%", 100 * a / b }')
remote projection ($lag_line)
TABLE
rm -rf "$lag_dir"
