#!/usr/bin/env bash
# The browser of the visual report's end-to-end test (tests/e2e/html.rs): Debian's
# chromium (installed with apt-get when missing, as root) driven by playwright-core from
# npm, installed once into target/browser (never `npx playwright install`: the test uses
# the system's chromium). Prints the chromium path on stdout, and the playwright-core
# folder on the second line.
# Exit 3 when the browser cannot be installed here (no apt-get as root, no node/npm):
# the test is then skipped, saying why.
set -euo pipefail
cd "$(dirname "$0")/../.."

PLAYWRIGHT_VERSION=1.57.0
dir=target/browser

chromium=$(command -v chromium || true)
if [ -z "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium with apt-get" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >&2 || exit 3
    chromium=$(command -v chromium || true)
  fi
  [ -n "$chromium" ] || exit 3
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing node and npm with apt-get" >&2
    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm) >&2 || exit 3
  else
    exit 3
  fi
fi

module="$dir/node_modules/playwright-core"
if [ "$(node -p "require('./$module/package.json').version" 2>/dev/null)" != "$PLAYWRIGHT_VERSION" ]; then
  mkdir -p "$dir"
  npm install --silent --no-audit --no-fund --prefix "$dir" "playwright-core@$PLAYWRIGHT_VERSION" >&2 || exit 3
fi
echo "$chromium"
echo "$(pwd)/$module"
