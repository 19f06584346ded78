#!/usr/bin/env bash
# The whole-process benchmark, as a user meets it: the `ledger` binary started from the
# shell on N-bar CSV files, persisted and in memory, plus `verify` and `report` of the
# persisted ledger, and backtesting.py 0.6.6 running the same SMA cross on the 1M-bar file.
# Every process is timed with /usr/bin/time -v (wall clock and peak RSS).
#
#   scripts/bench/whole-process.sh [WORK_DIR]        # default /tmp/ledger-bench
#
# Environment:
#   SIZES       bar counts to run the ledger on (default "1000000 10000000")
#   LEDGER_BIN  a ledger binary to use instead of building this checkout
#   PYTHON      the Python that creates the peer's venv (default python3)
#   KEEP_DATA=1 keep each persisted data dir (default: deleted once measured)
#   FORCE=1     run a size even when the memory estimate says it will not fit
#
# Prints a Markdown table; the raw numbers go to WORK_DIR/results-<UTC time>.jsonl.
# The network is used only by pip (the peer's venv, once) and, if /usr/bin/time is absent,
# by apt-get to install it.
set -Eeuo pipefail # -E: the ERR trap below also fires inside functions

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work_dir=${1:-/tmp/ledger-bench}
sizes=${SIZES:-1000000 10000000}
python=${PYTHON:-python3}
config=$here/btc-sma.toml
peer_bars=1000000 # the peer always runs on the 1M file, whatever SIZES says

# --- failing clearly --------------------------------------------------------------------
step="start"
die() {
  echo "whole-process: FAILED at step '$step': $*" >&2
  exit 1
}
on_error() { echo "whole-process: FAILED at step '$step' (line $1, exit $2)" >&2; }
trap 'on_error $LINENO $?' ERR

mkdir -p "$work_dir"
work_dir=$(cd "$work_dir" && pwd)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$work_dir/results-$stamp.jsonl
logs=$work_dir/logs-$stamp
mkdir -p "$logs"

# --- helpers ------------------------------------------------------------------------------

# timed NAME CMD...: runs CMD under /usr/bin/time -v with stdout and stderr in
# $logs/NAME.{out,err} and the time report in $logs/NAME.time; sets wall_s, cpu_s and
# rss_kb. Shows the command's stderr and stops when it fails.
timed() {
  local name=$1
  shift
  local t=$logs/$name.time
  if ! /usr/bin/time -v -o "$t" "$@" >"$logs/$name.out" 2>"$logs/$name.err"; then
    tail -n 20 "$logs/$name.err" >&2
    die "'$*' failed (output in $logs/$name.*)"
  fi
  # "Elapsed (wall clock) time (h:mm:ss or m:ss): 1:02.34": the value after ": " is
  # [h:]m:s; fold it into seconds.
  wall_s=$(awk -F': ' '/Elapsed \(wall clock\) time/ { n = split($2, p, ":"); s = 0
             for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$t")
  cpu_s=$(awk -F': ' '/User time \(seconds\)/ { u = $2 } /System time \(seconds\)/ { s = $2 }
            END { printf "%.2f", u + s }' "$t")
  rss_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$t")
  [[ -n $wall_s && -n $rss_kb ]] || die "could not read the /usr/bin/time report $t"
}

# calc EXPR: floating-point arithmetic (bash has none).
calc() { awk "BEGIN { printf \"%.10g\", $1 }"; }
fmt() { awk -v v="$1" -v d="${2:-0}" 'BEGIN { printf "%.*f", d, v }'; }
mib() { fmt "$(calc "$1 / 1024")" 0; }

# record KEY=VALUE...: one JSON object per line in $results (numbers unquoted).
record() {
  local out="" kv k v
  for kv in "$@"; do
    k=${kv%%=*} v=${kv#*=}
    if [[ $v =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then out+="\"$k\": $v, "; else out+="\"$k\": \"$v\", "; fi
  done
  printf '{%s}\n' "${out%, }" >>"$results"
}

# table_value FILE METRIC: a value of the report table `ledger replay/report` prints.
table_value() { awk -F'|' -v m="$2" '{ k = $2; gsub(/ /, "", k) } k == m { v = $3; gsub(/ /, "", v); print v; exit }' "$1"; }

# --- (0) tools ----------------------------------------------------------------------------
step="tools"
if [[ ! -x /usr/bin/time ]]; then
  # A fresh Debian machine has only the shell keyword `time`, which cannot report RSS.
  echo "whole-process: /usr/bin/time is missing: installing the Debian package 'time'" >&2
  command -v apt-get >/dev/null || die "/usr/bin/time is missing and there is no apt-get: install GNU time"
  [[ $(id -u) == 0 ]] || die "/usr/bin/time is missing: run 'sudo apt-get install -y time'"
  apt-get install -y time >/dev/null || { apt-get update >/dev/null && apt-get install -y time >/dev/null; } ||
    die "apt-get install -y time failed"
fi
command -v "$python" >/dev/null || die "no $python (set PYTHON)"
[[ -r $config ]] || die "missing $config"

# --- (a) the ledger binary ----------------------------------------------------------------
step="build"
if [[ -n ${LEDGER_BIN:-} ]]; then
  ledger=$LEDGER_BIN
else
  command -v cargo >/dev/null || die "no cargo: install the Rust toolchain or set LEDGER_BIN"
  echo "whole-process: cargo build --release -p ledger-cli" >&2
  (cd "$repo" && cargo build --release --locked -p ledger-cli) || die "cargo build --release -p ledger-cli failed"
  ledger=${CARGO_TARGET_DIR:-$repo/target}/release/ledger
fi
[[ -x $ledger ]] || die "no ledger binary at $ledger"

# --- (b) the peer's venv ------------------------------------------------------------------
step="venv"
venv=$work_dir/venv
peer_python=$venv/bin/python
if [[ -x $peer_python ]] && "$peer_python" -c 'import backtesting, sys; sys.exit(backtesting.__version__ != "0.6.6")' 2>/dev/null; then
  echo "whole-process: reusing $venv" >&2
else
  rm -rf "$venv"
  "$python" -m venv "$venv" ||
    die "'$python -m venv' failed (on Debian: apt-get install -y python3-venv)"
  echo "whole-process: pip install -r requirements-peer.txt into $venv" >&2
  "$peer_python" -m pip install --quiet --disable-pip-version-check --no-input -r "$here/requirements-peer.txt" ||
    die "pip install of backtesting==0.6.6 and its pinned dependencies failed"
fi

# --- (c) the series -----------------------------------------------------------------------
step="series"
declare -A series
all_sizes=$(printf '%s\n' $sizes $peer_bars | sort -n -u)
for n in $all_sizes; do
  series[$n]=$("$python" "$here/make-series.py" --work-dir "$work_dir" "$n") || die "make-series.py $n failed"
done

step="ledger --version"
ledger_version=$("$ledger" --version) || die "'$ledger --version' failed"
git_rev=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$repo" status --porcelain 2>/dev/null) ]]; then git_rev+="-dirty"; fi
record kind=meta utc="$stamp" git="$git_rev" ledger="$ledger" ledger_version="$ledger_version" \
  nproc="$(nproc)" mem_total_kb="$(awk '/MemTotal/ { print $2 }' /proc/meminfo)" config="$config"

rows=()          # ledger rows of the main table, without the ratio (known at the end)
rows_bps=()      # their bars/s, for the ratio
extra_rows=()    # verify and report rows
rss_per_bar=""   # from the largest size run so far, to predict the next one's peak RSS

# --- (d) the ledger, for each size ----------------------------------------------------------
notes=()         # sizes skipped, printed under the table
# Smallest first, so that each size's peak RSS predicts the next one's.
for n in $(printf '%s\n' $sizes | sort -n -u); do
  file=${series[$n]}
  step="memory check, $n bars"
  avail_kb=$(awk '/MemAvailable/ { print $2 }' /proc/meminfo)
  if [[ -n $rss_per_bar && ${FORCE:-0} != 1 ]]; then
    need_kb=$(fmt "$(calc "$rss_per_bar * $n")")
    # Two thirds, not all: the machine is shared, and a run that swaps or meets the OOM
    # killer measures nothing (today's code needs ~2 GB per million bars: 10M would not fit).
    if ((need_kb > avail_kb * 2 / 3)); then
      echo "whole-process: SKIPPING $n bars: the runs so far predict a peak RSS of $(mib "$need_kb") MiB," \
        "more than 2/3 of the $(mib "$avail_kb") MiB available (FORCE=1 runs it anyway)" >&2
      record kind=skipped bars="$n" predicted_rss_kb="$need_kb" available_kb="$avail_kb"
      notes+=("Skipped $n bars: predicted peak RSS $(mib "$need_kb") MiB, $(mib "$avail_kb") MiB available (FORCE=1 runs it).")
      continue
    fi
  fi
  cat "$file" >/dev/null # same warm page cache for every variant
  # Dirty pages left by earlier steps (a freshly written series, the previous data dir)
  # would otherwise be written back during the persisted run and charged to it.
  sync

  # Persisted: a fresh data dir, the default group durability of the config.
  step="ledger replay (persisted), $n bars"
  data_dir=$work_dir/data-$n
  rm -rf "$data_dir"
  echo "whole-process: $step" >&2
  timed "replay-persisted-$n" "$ledger" --data-dir "$data_dir" replay --data "$file" --config "$config"
  p_wall=$wall_s p_cpu=$cpu_s p_rss=$rss_kb
  p_trades=$(table_value "$logs/replay-persisted-$n.out" trades)
  p_equity=$(table_value "$logs/replay-persisted-$n.out" equity_final)
  [[ $(table_value "$logs/replay-persisted-$n.out" ticks) == "$n" ]] || die "the run did not report $n ticks"

  step="ledger verify, $n bars"
  echo "whole-process: $step" >&2
  timed "verify-$n" "$ledger" --data-dir "$data_dir" verify
  # "ok: 3247991 events, seq 1..=3247991, chain intact, head ..."
  events=$(awk '/^ok: [0-9]+ events/ { print $2 }' "$logs/verify-$n.out")
  [[ -n $events ]] || die "verify did not print 'ok: N events': $(head -c 300 "$logs/verify-$n.out")"
  v_wall=$wall_s v_rss=$rss_kb

  step="ledger report --run 1, $n bars"
  echo "whole-process: $step" >&2
  timed "report-$n" "$ledger" --data-dir "$data_dir" report --run 1
  r_wall=$wall_s r_rss=$rss_kb

  step="du -sb, $n bars"
  bytes=$(du -sb "$data_dir" | awk '{ print $1 }')
  per_event=$(fmt "$(calc "$bytes / $events")" 1)
  [[ ${KEEP_DATA:-0} == 1 ]] || rm -rf "$data_dir"

  step="ledger replay --in-memory, $n bars"
  echo "whole-process: $step" >&2
  mem_dir=$work_dir/in-memory-$n # must stay empty: --in-memory writes nothing
  rm -rf "$mem_dir"
  timed "replay-in-memory-$n" "$ledger" --data-dir "$mem_dir" replay --in-memory --data "$file" --config "$config"
  m_wall=$wall_s m_cpu=$cpu_s m_rss=$rss_kb
  m_trades=$(table_value "$logs/replay-in-memory-$n.out" trades)
  m_equity=$(table_value "$logs/replay-in-memory-$n.out" equity_final)
  [[ ! -e $mem_dir ]] || echo "whole-process: note: --in-memory created $mem_dir" >&2

  p_bps=$(calc "$n / $p_wall") m_bps=$(calc "$n / $m_wall")
  record kind=ledger variant=persisted bars="$n" wall_s="$p_wall" cpu_s="$p_cpu" max_rss_kb="$p_rss" \
    bars_per_s="$p_bps" events="$events" data_dir_bytes="$bytes" bytes_per_event="$per_event" \
    trades="$p_trades" equity_final="$p_equity"
  record kind=ledger variant=in-memory bars="$n" wall_s="$m_wall" cpu_s="$m_cpu" max_rss_kb="$m_rss" \
    bars_per_s="$m_bps" trades="$m_trades" equity_final="$m_equity"
  record kind=verify bars="$n" events="$events" wall_s="$v_wall" max_rss_kb="$v_rss" \
    events_per_s="$(calc "$events / $v_wall")"
  record kind=report bars="$n" events="$events" wall_s="$r_wall" max_rss_kb="$r_rss" \
    events_per_s="$(calc "$events / $r_wall")"

  rows+=("| ledger replay, persisted (group) | $n | $(fmt "$p_wall" 2) | $(fmt "$p_bps") | $(mib "$p_rss") | $per_event | $p_trades | $p_equity |")
  rows_bps+=("$p_bps")
  rows+=("| ledger replay --in-memory | $n | $(fmt "$m_wall" 2) | $(fmt "$m_bps") | $(mib "$m_rss") | - | $m_trades | $m_equity |")
  rows_bps+=("$m_bps")
  extra_rows+=("| ledger verify | $n | $events | $(fmt "$v_wall" 2) | $(fmt "$(calc "$events / $v_wall")") | $(mib "$v_rss") |")
  extra_rows+=("| ledger report --run 1 | $n | $events | $(fmt "$r_wall" 2) | $(fmt "$(calc "$events / $r_wall")") | $(mib "$r_rss") |")
  rss_per_bar=$(calc "(($p_rss > $m_rss) ? $p_rss : $m_rss) / $n")
done

# --- (e) the peer -------------------------------------------------------------------------
step="backtesting.py peer, $peer_bars bars"
echo "whole-process: $step" >&2
cat "${series[$peer_bars]}" >/dev/null
sync
timed "backtesting-py-$peer_bars" "$peer_python" "$here/backtesting_peer.py" "${series[$peer_bars]}"
b_wall=$wall_s b_cpu=$cpu_s b_rss=$rss_kb
peer_json=$(grep '^{' "$logs/backtesting-py-$peer_bars.out" | tail -n 1)
[[ -n $peer_json ]] || die "the peer printed no JSON line"
peer_field() { "$peer_python" -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$peer_json" "$1"; }
b_run=$(peer_field run_s) b_script=$(peer_field script_s) b_trades=$(peer_field trades) b_equity=$(peer_field equity_final)
b_bps=$(calc "$peer_bars / $b_wall") b_run_bps=$(calc "$peer_bars / $b_run")
echo "$peer_json" >>"$results"
record kind=peer variant=whole-process bars="$peer_bars" wall_s="$b_wall" cpu_s="$b_cpu" max_rss_kb="$b_rss" \
  bars_per_s="$b_bps" run_s="$b_run" run_bars_per_s="$b_run_bps" script_s="$b_script" \
  trades="$b_trades" equity_final="$b_equity"

# --- (f) the table ------------------------------------------------------------------------
step="table"
echo
echo "Whole-process benchmark, $stamp, git $git_rev, $(nproc) cores. SMA cross 10/30 with shorts,"
echo "next-open fills, 0.1% commission, 10 M cash; one sample each (the machine is noisy)."
echo
echo "| variant | bars | wall s | bars/s | peak RSS MiB | bytes/event | trades | final equity | bars/s vs backtesting.py |"
echo "|---|---|---|---|---|---|---|---|---|"
for i in "${!rows[@]}"; do
  echo "${rows[$i]} $(fmt "$(calc "${rows_bps[$i]} / $b_bps")" 2)x |"
done
echo "| backtesting.py $(peer_field version), whole process | $peer_bars | $(fmt "$b_wall" 2) | $(fmt "$b_bps") | $(mib "$b_rss") | - | $b_trades | $b_equity | 1x |"
echo "| backtesting.py, bt.run() alone (same process) | $peer_bars | $(fmt "$b_run" 2) | $(fmt "$b_run_bps") | - | - | - | - | - |"
echo
echo "| step | bars | events | wall s | events/s | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${extra_rows[@]}"
echo
((${#notes[@]} == 0)) || { printf '%s\n' "${notes[@]}"; echo; }
echo "Raw numbers: $results"
echo "Each process's output and /usr/bin/time report: $logs/"
