#!/usr/bin/env bash
# An LLM backtest served from the response cache, as a user meets it (issue 12): the
# `ledger` binary on N one-minute BTC-PERP bars with `[provider] kind = "openai"`, first
# asking a chat-completions server on loopback (scripts/bench/llm_server.py: one call per
# bar after the 49-bar warm-up) with `--llm-cache DIR`, then the same backtest again with
# `--llm-cache DIR --llm-cache-only` (no call), in memory (`--in-memory`) and persisted;
# beside them the rules strategy on the same bars in memory (the pipeline without a
# model). Each process is timed with /usr/bin/time -v.
#
#   scripts/bench/llm-cache.sh [WORK_DIR]        # default /tmp/ledger-bench
#
# Environment: SIZES (bars, default "100000 525600": 525,600 is a year of minute bars),
# REPEAT (samples of the cached runs, the least wall time reported; default 2),
# LEDGER_BIN (a binary instead of building this checkout), PORT (the server's, default
# 18777). A filled cache (WORK_DIR/llm-cache-N) is reused. Prints a Markdown table; logs
# in WORK_DIR/llm-logs-<UTC time>/.
set -Eeuo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work_dir=${1:-/tmp/ledger-bench}
sizes=${SIZES:-100000 525600}
repeat=${REPEAT:-2}
port=${PORT:-18777}
python=${PYTHON:-python3}

step="start"
die() {
  echo "llm-cache: FAILED at step '$step': $*" >&2
  exit 1
}
mkdir -p "$work_dir"
work_dir=$(cd "$work_dir" && pwd)
logs=$work_dir/llm-logs-$(date -u +%Y%m%dT%H%M%SZ)
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

step="server"
"$python" "$here/llm_server.py" "$port" >"$logs/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
export NO_PROXY=127.0.0.1 no_proxy=127.0.0.1
config=$logs/llm.toml
sed -e '/^\[provider\]/,/^$/d' "$here/btc-sma.toml" >"$config"
cat >>"$config" <<TOML

[provider]
kind = "openai"
model = "bench"
base_url = "http://127.0.0.1:$port/v1"
temperature = 0.0
timeout = "10s"
max_retries = 0
TOML
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

cpu_s() { awk -F': ' '/User time/ { u = $2 } /System time/ { s = $2 } END { printf "%.2f", u + s }' "$1"; }

echo "| variant | bars | wall s | CPU s | cycles/s | peak RSS MiB | note |"
echo "|---|---|---|---|---|---|---|"
for bars in $sizes; do
  step="series $bars"
  series=$("$python" "$here/make-series.py" --work-dir "$work_dir" "$bars") || die "make-series.py failed"
  cache=$work_dir/llm-cache-$bars
  if [[ ! -f $cache/filled ]]; then
    step="fill $bars"
    rm -rf "$cache"
    timed "fill-$bars" "$ledger" --data-dir "$logs/none" replay --in-memory --config "$config" --data "$series" \
      --llm-cache "$cache"
    touch "$cache/filled"
    echo "| asking the model (fills the cache) | $bars | $(fmt "$wall_s" 2) | $(cpu_s "$logs/fill-$bars.time") |" \
      "$(fmt "$(calc "$bars / $wall_s")" 0) | $(mib "$rss_kb") | $(du -sm "$cache" | cut -f1) MB cache |"
  fi
  for variant in cached-in-memory cached-persisted rules-in-memory; do
    best_wall="" best_rss="" best_cpu=""
    for sample in $(seq "$repeat"); do
      step="$variant $bars #$sample"
      dir=$work_dir/llm-data
      rm -rf "$dir"
      case $variant in
        cached-in-memory) args=(replay --in-memory --config "$config" --llm-cache "$cache" --llm-cache-only) ;;
        cached-persisted) args=(replay --config "$config" --llm-cache "$cache" --llm-cache-only) ;;
        rules-in-memory) args=(replay --in-memory --config "$here/btc-sma.toml") ;;
      esac
      timed "$variant-$bars-$sample" "$ledger" --data-dir "$dir" "${args[@]}" --data "$series"
      if [[ -z $best_wall ]] || awk -v a="$wall_s" -v b="$best_wall" 'BEGIN { exit !(a < b) }'; then
        best_wall=$wall_s best_rss=$rss_kb best_cpu=$(cpu_s "$logs/$variant-$bars-$sample.time")
        note=""
        [[ $variant == cached-persisted ]] && note="$(du -sm "$dir" | cut -f1) MB ledger"
      fi
    done
    echo "| $variant | $bars | $(fmt "$best_wall" 2) | $best_cpu | $(fmt "$(calc "$bars / $best_wall")" 0) |" \
      "$(mib "$best_rss") | $note |"
  done
done
rm -rf "$work_dir/llm-data"
