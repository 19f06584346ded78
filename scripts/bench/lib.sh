# Helpers shared by the benchmark scripts (sourced; they set `die`, `logs` and `step`).

# timed NAME CMD...: runs CMD under /usr/bin/time -v, stdout and stderr in
# $logs/NAME.{out,err}, the time report in $logs/NAME.time; sets wall_s and rss_kb, and
# start_ns (the wall clock just before it started). Stops when CMD fails.
timed() {
  local name=$1
  shift
  local t=$logs/$name.time
  start_ns=$(date +%s%N)
  if ! /usr/bin/time -v -o "$t" "$@" >"$logs/$name.out" 2>"$logs/$name.err"; then
    tail -n 20 "$logs/$name.err" >&2
    die "'$*' failed (output in $logs/$name.*)"
  fi
  wall_s=$(awk -F': ' '/Elapsed \(wall clock\) time/ { n = split($2, p, ":"); s = 0
             for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$t")
  rss_kb=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$t")
  [[ -n $wall_s && -n $rss_kb ]] || die "could not read the /usr/bin/time report $t"
}

calc() { awk "BEGIN { printf \"%.10g\", $1 }"; }
fmt() { awk -v v="$1" -v d="${2:-0}" 'BEGIN { printf "%.*f", d, v }'; }
mib() { fmt "$(calc "$1 / 1024")" 0; }

# bench_dirs PREFIX: makes $work_dir absolute (creating it) and a fresh folder for the
# logs, $work_dir/PREFIX-<UTC time>; sets work_dir, stamp and logs.
bench_dirs() {
  mkdir -p "$work_dir"
  work_dir=$(cd "$work_dir" && pwd)
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  logs=$work_dir/$1-$stamp
  mkdir -p "$logs"
}

# build_with_example EXAMPLE: builds this checkout's release `ledger` and the adapters'
# example EXAMPLE ($repo: the checkout).
build_with_example() {
  (cd "$repo" && cargo build --release --locked -q -p ledger-cli --bin ledger -p ledger-adapters --example "$1")
}
