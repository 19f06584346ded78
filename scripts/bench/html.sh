#!/usr/bin/env bash
# The visual report's benchmark (issue 13): for each size, a persisted backtest of N
# BTC-PERP minute bars (scripts/bench/btc-sma.toml: SMA 10/30 with shorts), then
# `ledger report --run 1` (the text report, for reference) and `ledger report --run 1
# --html`, each a whole `ledger` process under /usr/bin/time -v (wall clock, peak RSS);
# the page's size; and its load in headless Chromium (scripts/browser/check.js: from
# navigation to plotly's figure drawn, the browser already started), best of 3.
#
#   scripts/bench/html.sh [WORK_DIR]        # default /tmp/ledger-bench-html
#
# Environment:
#   SIZES       bars per run (default "100000 1000000")
#   LEDGER_BIN  a ledger binary to use instead of building this checkout (release)
#   PYTHON      python3 for make-series.py (default python3)
#
# Prints a Markdown table; raw numbers in WORK_DIR/html-<UTC time>.jsonl.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work_dir=${1:-/tmp/ledger-bench-html}
sizes=${SIZES:-100000 1000000}
python=${PYTHON:-python3}
config=$here/btc-sma.toml

step="start"
die() {
  echo "html bench: FAILED at step '$step': $*" >&2
  exit 1
}
trap 'echo "html bench: FAILED at step $step (line $LINENO, exit $?)" >&2' ERR

mkdir -p "$work_dir"
work_dir=$(cd "$work_dir" && pwd)
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=$work_dir/html-$stamp.jsonl
logs=$work_dir/html-logs-$stamp
mkdir -p "$logs"
# shellcheck source=lib.sh
source "$here/lib.sh"

step="tools"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (Debian: apt-get install -y time)"
browser=$(bash "$repo/scripts/browser/setup.sh") || die "no browser (scripts/browser/setup.sh)"
chromium=${browser%%$'\n'*}
playwright=${browser#*$'\n'}

step="build"
if [[ -n ${LEDGER_BIN:-} ]]; then
  ledger=$LEDGER_BIN
else
  (cd "$repo" && cargo build --release --locked -p ledger-cli >&2)
  ledger=$repo/target/release/ledger
fi

# best_load PAGE: the best of 3 loads of PAGE in Chromium, ms; sets found (the last result).
best_load() {
  best=""
  for _ in 1 2 3; do
    found=$(node "$repo/scripts/browser/check.js" "$chromium" "$playwright" "$1" "${1%.html}.png")
    ms=$("$python" -c 'import json,sys; d=json.loads(sys.argv[1]); assert not d.get("failure") and not d["errors"], d; print(d["load_ms"])' "$found")
    if [[ -z $best || $ms -lt $best ]]; then best=$ms; fi
  done
}

echo "| bars | events | \`report\` s | RSS MB | \`report --html\` s | RSS MB | page MB | drawn ticks per point | markers | load in Chromium s (best of 3) | plotly.js alone s |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in $sizes; do
  step="series $n"
  series=$("$python" "$here/make-series.py" --work-dir "$work_dir" "$n" 2>/dev/null)
  data=$work_dir/data-$n
  rm -rf "$data"
  step="replay $n"
  timed "replay-$n" "$ledger" --data-dir "$data" replay --config "$config" --data "$series"
  events=$("$ledger" --data-dir "$data" verify | awk '/^ok:/ { print $2 }')
  step="report $n"
  timed "report-$n" "$ledger" --data-dir "$data" report --run 1
  report_s=$wall_s report_kb=$rss_kb
  step="report --html $n"
  page=$work_dir/run-$n.html
  timed "html-$n" "$ledger" --data-dir "$data" report --run 1 --html "$page"
  html_s=$wall_s html_kb=$rss_kb
  bytes=$(stat -c %s "$page")
  step="chromium $n"
  best_load "$page"
  page_best=$best
  # The floor on this machine: a page holding only plotly.js as the report inlines it.
  "$python" -c '
import sys
html = open(sys.argv[1]).read()
start = html.index("<script type=\"text/javascript\">")
end = html.index("</script>", start) + len("</script>")
open(sys.argv[2], "w").write("<!DOCTYPE html><html><head>" + html[start:end]
    + "<script>window.ledgerReport = {errors: [], ready: true};</script></head><body><div id=chart></div>"
    + "<script>document.getElementById(\"chart\").data = [];</script></body></html>")' "$page" "$work_dir/plotly-only.html"
  best_load "$work_dir/plotly-only.html"
  floor_best=$best
  found=$(node "$repo/scripts/browser/check.js" "$chromium" "$playwright" "$page" "$work_dir/run-$n.png")
  summary=$("$python" -c '
import json, sys
d = json.loads(sys.argv[1])
marks = sum(t["points"] for t in d["traces"] if t.get("customdata"))
price = next(t for t in d["traces"] if t["name"].startswith("price"))
print(marks, price["points"])' "$found")
  markers=${summary% *} candles=${summary#* }
  per_point=$(calc "$n / $candles")
  echo "| $n | $events | $(fmt "$report_s" 2) | $(mib "$report_kb") | $(fmt "$html_s" 2) | $(mib "$html_kb") | $(fmt "$(calc "$bytes / 1048576")" 1) | $(fmt "$per_point" 0) | $markers | $(fmt "$(calc "$page_best / 1000")" 2) | $(fmt "$(calc "$floor_best / 1000")" 2) |"
  printf '{"bars":%s,"events":%s,"report_s":%s,"report_rss_kb":%s,"html_s":%s,"html_rss_kb":%s,"page_bytes":%s,"candles":%s,"markers":%s,"load_ms_best":%s,"plotly_only_ms_best":%s,"load_average":"%s"}\n' \
    "$n" "$events" "$report_s" "$report_kb" "$html_s" "$html_kb" "$bytes" "$candles" "$markers" "$page_best" "$floor_best" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$results"
  rm -rf "$data"
done
echo "load average at the end (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
echo "raw numbers: $results; logs: $logs" >&2
