#!/usr/bin/env bash
# The audit benchmark (issue 10): `ledger audit export` and `ledger audit verify` of a
# persisted backtest of at least 1,000,000 events, each a whole `ledger` process timed
# with /usr/bin/time -v (wall clock, CPU, peak RSS), in JSON Lines and CSV; and the Python
# verifier on the JSONL export (PYTHON_VERIFY=0 to skip it: it takes about 20 s).
#
#   scripts/bench/audit.sh [WORK_DIR]        # default /tmp/ledger-bench
#
# Environment:
#   BARS        one-minute bars of the backtest (default 322581: 1,023,860 events)
#   LEDGER_BIN  a ledger binary to use instead of building this checkout
#   PYTHON      python3 for make-series.py and the verifier (default python3)
#   PYTHON_VERIFY=0  skip scripts/audit/verify.py
#
# Prints a Markdown table; the raw numbers go to WORK_DIR/audit-<UTC time>.jsonl.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work_dir=${1:-/tmp/ledger-bench}
bars=${BARS:-322581}
python=${PYTHON:-python3}
config=$here/btc-sma.toml

step="start"
die() {
  echo "audit bench: FAILED at step '$step': $*" >&2
  exit 1
}
trap 'echo "audit bench: FAILED at step $step (line $LINENO, exit $?)" >&2' ERR

mkdir -p "$work_dir"
work_dir=$(cd "$work_dir" && pwd)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$work_dir/audit-$stamp.jsonl
logs=$work_dir/audit-logs-$stamp
mkdir -p "$logs"

# timed NAME CMD...: CMD under /usr/bin/time -v; sets wall_s, cpu_s, rss_kb.
timed() {
  local name=$1
  shift
  local t=$logs/$name.time
  if ! /usr/bin/time -v -o "$t" "$@" >"$logs/$name.out" 2>"$logs/$name.err"; then
    tail -n 20 "$logs/$name.out" "$logs/$name.err" >&2
    die "'$*' failed (output in $logs/$name.*)"
  fi
  wall_s=$(awk -F': ' '/Elapsed \(wall clock\) time/ { n = split($2, p, ":"); s = 0
             for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$t")
  cpu_s=$(awk -F': ' '/User time \(seconds\)/ { u = $2 } /System time \(seconds\)/ { s = $2 }
            END { printf "%.2f", u + s }' "$t")
  rss_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$t")
}

calc() { awk "BEGIN { printf \"%.10g\", $1 }"; }
fmt() { awk -v v="$1" -v d="${2:-0}" 'BEGIN { printf "%.*f", d, v }'; }

step="tools"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (Debian: apt-get install -y time)"
command -v "$python" >/dev/null || die "no $python (set PYTHON)"

step="build"
if [[ -n ${LEDGER_BIN:-} ]]; then
  ledger=$LEDGER_BIN
else
  (cd "$repo" && cargo build --release --locked -p ledger-cli) || die "cargo build --release -p ledger-cli failed"
  ledger=${CARGO_TARGET_DIR:-$repo/target}/release/ledger
fi
[[ -x $ledger ]] || die "no ledger binary at $ledger"

step="series"
data=$("$python" "$here/make-series.py" --work-dir "$work_dir" "$bars") || die "make-series.py $bars failed"

step="replay"
ledger_dir=$work_dir/audit-ledger-$stamp
timed replay "$ledger" --data-dir "$ledger_dir" replay --config "$config" --data "$data"
events=$("$ledger" --data-dir "$ledger_dir" runs --json | "$python" -c 'import json,sys; print(json.loads(sys.stdin.readline())["event_count"])')
echo "audit bench: run 1 has $events events" >&2

rows_line() { # NAME ROWS: a table row from the last timed step
  local rows_s events_s
  rows_s=$(fmt "$(calc "$2 / $wall_s")")
  events_s=$(fmt "$(calc "$events / $wall_s")")
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(fmt "$2")" "$events" "$wall_s" "$cpu_s" "$rows_s" "$events_s" "$(fmt "$(calc "$rss_kb / 1024")")"
  printf '{"step": "%s", "rows": %s, "events": %s, "wall_s": %s, "cpu_s": %s, "rss_kb": %s}\n' "$1" "$2" "$events" "$wall_s" "$cpu_s" "$rss_kb" >>"$results"
}

echo "| step | rows | events | wall s | CPU s | rows/s | events/s | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|"
for format in jsonl csv; do
  out=$work_dir/audit-export-$format-$stamp
  step="export $format"
  timed "export-$format" "$ledger" --data-dir "$ledger_dir" audit export --run 1 --format "$format" --out "$out"
  rows=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["counts"]["rows"])' "$out/manifest.json")
  rows_line "\`audit export --format $format\`" "$rows"
  step="verify $format"
  timed "verify-$format" "$ledger" audit verify "$out"
  rows_line "\`audit verify\` ($format)" "$rows"
  if [[ $format == jsonl && ${PYTHON_VERIFY:-1} != 0 ]]; then
    step="verify.py"
    timed "verify-py" "$python" "$repo/scripts/audit/verify.py" "$out"
    rows_line "\`scripts/audit/verify.py\` (jsonl)" "$rows"
  fi
  du -sh "$out" >&2
  rm -rf "$out"
done
rm -rf "$ledger_dir"
echo "audit bench: raw numbers in $results" >&2
