#!/usr/bin/env bash
# The parity test's peer: backtesting.py 0.6.6 and its packages, pinned as the benchmark
# pins them (scripts/bench/requirements-peer.txt), in a throwaway venv under target/
# (PEER_VENV, default target/peer-venv), made once and reused while the pins are the
# same. Prints the venv's python on stdout; progress goes to stderr.
#
# Exit 0 with the path; 3 when no Python 3 with venv is found (the test then skips);
# anything else is a failure (no network for pip, a broken venv).
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=${PEER_VENV:-target/peer-venv}
requirements=scripts/bench/requirements-peer.txt
python=${PEER_SYSTEM_PYTHON:-python3}

if ! command -v "$python" >/dev/null 2>&1 || ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "parity peer: no Python 3 with venv and ensurepip found ($python; on Debian: apt-get install python3-venv)" >&2
  exit 3
fi

stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "$(cd "$venv" && pwd)/bin/python"
  exit 0
fi

echo "parity peer: making $venv (backtesting.py and its pinned packages; about a minute)" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
"$venv/bin/python" -c 'import backtesting; assert backtesting.__version__ == "0.6.6", backtesting.__version__' >&2
echo "$want" > "$stamp"
echo "$(cd "$venv" && pwd)/bin/python"
