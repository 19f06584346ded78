#!/usr/bin/env bash
# The restart and rebuild benchmark, as an operator meets it: the `ledger` binary started
# from the shell, every process timed with /usr/bin/time -v (wall clock and peak RSS).
#
#   (a) restart: `ledger run --speed 0` on a long series, killed with SIGKILL once its
#       ledger holds about LARGE events; the data file is then cut TAIL_BARS bars after
#       the last recorded tick (same path, so the same configuration), and `ledger run`
#       with the same configuration continues the run: opens the ledger, restores the
#       session snapshot, re-executes the recorded tail after it, records RunResumed,
#       skips the recorded ticks of the data file, runs the TAIL_BARS bars left and stops.
#       Each sample restarts a fresh copy of the killed ledger.
#   (b) rebuild: `ledger rebuild` (from the run's latest session snapshot) and
#       `ledger rebuild --from-scratch` (every event of the run) on finished runs of about
#       SMALL and LARGE events.
#
#   scripts/bench/restart.sh [WORK_DIR]        # default /tmp/ledger-bench
#
# Environment:
#   SMALL, LARGE   events of the runs (default 1000000 and 10000000)
#   TAIL_BARS      bars the restarted run has left to run (default 1000)
#   REPEAT         samples of each measurement; the best (least wall time) is reported
#                  (default 3: the machine is noisy)
#   LEDGER_BIN     a ledger binary to use instead of building this checkout (release)
#   KEEP_DATA=1    keep the data dirs (default: deleted at the end)
#
# Prints Markdown tables; raw numbers go to WORK_DIR/restart-results-<UTC time>.jsonl,
# each process's output and time report to WORK_DIR/restart-logs-<UTC time>/. The series
# come from make-series.py (shared with whole-process.sh). No network, except apt-get for
# /usr/bin/time if it is missing. Disk: about 120 bytes per event for each ledger, two
# copies of the LARGE one at a time (~3 GB at the defaults), plus the series.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work_dir=${1:-/tmp/ledger-bench}
small=${SMALL:-1000000}
large=${LARGE:-10000000}
tail_bars=${TAIL_BARS:-1000}
repeat=${REPEAT:-3}
python=${PYTHON:-python3}
config=$here/btc-sma.toml
# Events per bar of this strategy on this data (tick, decision, verdict, and the orders
# and fills of the first ~100,000 bars): a little over 3.
events_per_bar=3.1

step="start"
die() {
  echo "restart: FAILED at step '$step': $*" >&2
  exit 1
}
on_error() { echo "restart: FAILED at step '$step' (line $1, exit $2)" >&2; }
trap 'on_error $LINENO $?' ERR

mkdir -p "$work_dir"
work_dir=$(cd "$work_dir" && pwd)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$work_dir/restart-results-$stamp.jsonl
logs=$work_dir/restart-logs-$stamp
data=$work_dir/restart-data-$stamp
mkdir -p "$logs" "$data"
cleanup() { [[ ${KEEP_DATA:-0} == 1 ]] || rm -rf "$data"; }
trap cleanup EXIT

# --- helpers ------------------------------------------------------------------------------

# timed, calc, fmt, mib
# shellcheck source=scripts/bench/lib.sh
source "$here/lib.sh"

record() {
  local out="" kv k v
  for kv in "$@"; do
    k=${kv%%=*} v=${kv#*=}
    if [[ $v =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then out+="\"$k\": $v, "; else out+="\"$k\": \"$v\", "; fi
  done
  printf '{%s}\n' "${out%, }" >>"$results"
}

# json_field JSON KEY...: a field of a JSON document (nested keys in order).
json_field() { "$python" -c 'import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2:]:
    v = v[k]
print(v)' "$@"; }

# best FILE: "wall rss" of the sample with the least wall time (lines "wall rss ...").
best() { sort -g "$1" | head -n 1; }

# last_seq DIR: the last seq of the ledger in DIR (its latest run's, one run per ledger).
last_seq() { json_field "$("$ledger" --data-dir "$1" status --json)" latest_run last_seq; }

# --- tools, binary, series ------------------------------------------------------------------
step="tools"
if [[ ! -x /usr/bin/time ]]; then
  echo "restart: /usr/bin/time is missing: installing the Debian package 'time'" >&2
  [[ $(id -u) == 0 ]] || die "/usr/bin/time is missing: run 'sudo apt-get install -y time'"
  apt-get install -y time >/dev/null || { apt-get update >/dev/null && apt-get install -y time >/dev/null; } ||
    die "apt-get install -y time failed"
fi
command -v "$python" >/dev/null || die "no $python (set PYTHON)"
[[ -r $config ]] || die "missing $config"

step="build"
if [[ -n ${LEDGER_BIN:-} ]]; then
  ledger=$LEDGER_BIN
else
  echo "restart: cargo build --release -p ledger-cli" >&2
  (cd "$repo" && cargo build --release --locked -p ledger-cli) || die "cargo build --release -p ledger-cli failed"
  ledger=${CARGO_TARGET_DIR:-$repo/target}/release/ledger
fi
[[ -x $ledger ]] || die "no ledger binary at $ledger"

step="series"
bars_small=$(fmt "$(calc "$small / $events_per_bar")")
bars_large=$(fmt "$(calc "$large / $events_per_bar")")
# The killed run's series: long enough that the kill comes well before its end.
bars_kill=$(fmt "$(calc "$bars_large * 1.3")")
series_small=$("$python" "$here/make-series.py" --work-dir "$work_dir" "$bars_small") || die "make-series.py failed"
series_large=$("$python" "$here/make-series.py" --work-dir "$work_dir" "$bars_large") || die "make-series.py failed"
series_kill=$("$python" "$here/make-series.py" --work-dir "$work_dir" "$bars_kill") || die "make-series.py failed"

git_rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$repo" status --porcelain 2>/dev/null) ]]; then git_rev+="-dirty"; fi
record kind=meta utc="$stamp" git="$git_rev" ledger="$ledger" ledger_version="$("$ledger" --version)" \
  nproc="$(nproc)" repeat="$repeat" config="$config"
export RUST_LOG=info

# --- (a) restart ----------------------------------------------------------------------------
step="restart: the run to kill"
killed=$data/killed
feed=$data/feed.csv # the killed run's data file; cut short before the restarts
ln -s "$series_kill" "$feed"
echo "restart: $step ($bars_kill bars, killed at $large events)" >&2
"$ledger" --data-dir "$killed" run --speed 0 --config "$config" --data "$feed" >"$logs/killed.out" 2>"$logs/killed.err" &
pid=$!
head_seq=0
while ((head_seq < large)); do
  sleep 0.2
  kill -0 "$pid" 2>/dev/null || die "the run ended before $large events (see $logs/killed.err)"
  # The session's status through its control endpoint (head_seq: appended so far).
  status=$("$ledger" --data-dir "$killed" status --json 2>/dev/null) || continue
  head_seq=$(json_field "$status" session head_seq 2>/dev/null || echo 0)
done
kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
events_killed=$(last_seq "$killed")
[[ $("$ledger" --data-dir "$killed" status) == *"interrupted (no RunStopped)"* ]] ||
  die "the run was not interrupted by the kill: $("$ledger" --data-dir "$killed" status)"
# The cycle of the last recorded event is the count of ticks recorded (cycle ids count
# a run's ticks from 1; whole cycles are appended).
cycles=$("$ledger" --data-dir "$killed" events --from "$((events_killed - 50))" --json |
  "$python" -c 'import json, sys; print(max(json.loads(l)["header"]["cycle_id"] for l in sys.stdin))')
rm "$feed"
head -n "$((cycles + tail_bars + 1))" "$series_kill" >"$feed"
du_killed=$(du -sb "$killed" | awk '{ print $1 }')
record kind=killed events="$events_killed" cycles="$cycles" tail_bars="$tail_bars" data_dir_bytes="$du_killed"
echo "restart: killed at seq $events_killed, $cycles ticks recorded; data cut to $((cycles + tail_bars)) bars" >&2

: >"$logs/restart.samples"
for i in $(seq 1 "$repeat"); do
  step="restart: sample $i"
  trial=$data/restart-$i
  rm -rf "$trial"
  cp -a "$killed" "$trial"
  sync
  echo "restart: $step" >&2
  timed "restart-$i" "$ledger" --data-dir "$trial" run --speed 0 --config "$config" --data "$feed"
  restart_wall=$wall_s restart_rss=$rss_kb
  # "... INFO ledger::pipeline: resumed the interrupted run run=1 cycles=N snapshot_seq=S ..."
  line=$(grep -m1 'resumed the interrupted run' "$logs/restart-$i.err") || die "no 'resumed' line in $logs/restart-$i.err"
  resumed_ns=$(date -d "$(awk '{ print $1 }' <<<"$line")" +%s%N)
  to_resumed_s=$(calc "($resumed_ns - $start_ns) / 1e9")
  snapshot_seq=$(grep -o 'snapshot_seq=[0-9]*' <<<"$line" | cut -d= -f2)
  resumed_cycles=$(grep -o ' cycles=[0-9]*' <<<"$line" | cut -d= -f2)
  [[ $resumed_cycles == "$cycles" ]] || die "resumed at $resumed_cycles cycles, expected $cycles"
  grep -q "| ticks .*| $((cycles + tail_bars)) " "$logs/restart-$i.out" ||
    die "the restarted run did not report $((cycles + tail_bars)) ticks ($logs/restart-$i.out)"
  if ((i == 1)); then
    step="restart: verify the continued run"
    timed "restart-verify" "$ledger" --data-dir "$trial" verify
    grep -q '^ok: ' "$logs/restart-verify.out" || die "verify: $(head -c 300 "$logs/restart-verify.out")"
    "$ledger" --data-dir "$trial" runs | grep -q '(end of data)' || die "the continued run did not end at the end of its data"
  fi
  echo "$restart_wall $restart_rss $to_resumed_s $snapshot_seq" >>"$logs/restart.samples"
  record kind=restart sample="$i" events="$events_killed" wall_s="$restart_wall" max_rss_kb="$restart_rss" \
    to_resumed_s="$to_resumed_s" snapshot_seq="$snapshot_seq" tail_bars="$tail_bars"
  rm -rf "$trial"
done
read -r r_wall r_rss r_resumed r_snapshot < <(best "$logs/restart.samples")
r_walls=$(awk '{ printf "%s%.2f", (NR > 1 ? " / " : ""), $1 }' "$logs/restart.samples")
r_resumeds=$(awk '{ printf "%s%.2f", (NR > 1 ? " / " : ""), $3 }' "$logs/restart.samples")
[[ ${KEEP_DATA:-0} == 1 ]] || rm -rf "$killed"

# --- (b) rebuild ----------------------------------------------------------------------------
rebuild_rows=()
for size in small large; do
  if [[ $size == small ]]; then series=$series_small bars=$bars_small; else series=$series_large bars=$bars_large; fi
  step="rebuild: the run of $bars bars"
  dir=$data/rebuild-$bars
  echo "restart: $step" >&2
  timed "run-$bars" "$ledger" --data-dir "$dir" run --speed 0 --config "$config" --data "$series"
  events=$(last_seq "$dir")
  sync
  for variant in snapshot from-scratch; do
    step="rebuild ($variant), $bars bars"
    args=(rebuild --json)
    [[ $variant == from-scratch ]] && args+=(--from-scratch)
    : >"$logs/rebuild-$variant-$bars.samples"
    for i in $(seq 1 "$repeat"); do
      echo "restart: $step, sample $i" >&2
      timed "rebuild-$variant-$bars-$i" "$ledger" --data-dir "$dir" "${args[@]}"
      out=$(cat "$logs/rebuild-$variant-$bars-$i.out")
      covers=$(json_field "$out" covers_seq)
      from=$(json_field "$out" snapshot_seq)
      [[ $covers == "$events" ]] || die "rebuild covers seq $covers, the run ends at $events"
      folded=$((covers - from))
      echo "$wall_s $rss_kb $folded" >>"$logs/rebuild-$variant-$bars.samples"
      record kind=rebuild variant="$variant" events="$events" folded="$folded" snapshot_seq="$from" \
        sample="$i" wall_s="$wall_s" max_rss_kb="$rss_kb" events_per_s="$(calc "$folded / $wall_s")"
    done
    # The account is the same either way (all but the field that says where it started).
    if [[ $variant == from-scratch ]]; then
      a=$(json_field "$(cat "$logs/rebuild-snapshot-$bars-1.out")" equity)
      b=$(json_field "$(cat "$logs/rebuild-from-scratch-$bars-1.out")" equity)
      [[ $a == "$b" ]] || die "rebuild from the snapshot gives equity $a, from scratch $b"
    fi
    read -r b_wall b_rss b_folded < <(best "$logs/rebuild-$variant-$bars.samples")
    walls=$(sort -g "$logs/rebuild-$variant-$bars.samples" | awk '{ printf "%s%.2f", (NR > 1 ? " / " : ""), $1 }')
    rebuild_rows+=("| \`ledger rebuild$([[ $variant == from-scratch ]] && echo ' --from-scratch')\` | $events | $b_folded | $(fmt "$b_wall" 2) ($walls) | $(fmt "$(calc "$b_folded / $b_wall")") | $(mib "$b_rss") |")
  done
  [[ ${KEEP_DATA:-0} == 1 ]] || rm -rf "$dir"
done

# --- the tables -----------------------------------------------------------------------------
step="tables"
echo
echo "Restart and rebuild, $stamp, git $git_rev, $(nproc) cores; best of $repeat (the machine is noisy),"
echo "all samples in brackets, fastest first for rebuilds, in order for restarts."
echo
echo "| step | events in the ledger | wall s | to \"resumed\" s | peak RSS MiB | resumed from |"
echo "|---|---|---|---|---|---|"
echo "| \`ledger run\` restarted after SIGKILL ($tail_bars bars left) | $events_killed | $(fmt "$r_wall" 2) ($r_walls) | $(fmt "$r_resumed" 2) ($r_resumeds) | $(mib "$r_rss") | snapshot at seq $r_snapshot, $((events_killed - r_snapshot)) events re-executed |"
echo
echo "| step | events in the run | events folded | wall s | events/s | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rebuild_rows[@]}"
echo
echo "Raw numbers: $results"
echo "Each process's output and /usr/bin/time report: $logs/"
