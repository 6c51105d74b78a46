#!/usr/bin/env bash
# The test suite (CPU, offline). Reads real fixtures from ../shared/data when present.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
# The review page is tested in a real browser; say at once when those tests will skip, and how to run them.
if ! { command -v chromium || command -v chromium-browser; } >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "scripts/test.sh: no chromium + chromedriver: the review page's browser tests will be SKIPPED." \
         "Enable them with: sudo apt-get install -y chromium chromium-driver" >&2
fi
exec python -m pytest -q "$@"
