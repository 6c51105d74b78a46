#!/usr/bin/env bash
# The test suite (CPU, offline). Reads real fixtures from ../shared/data when present.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
exec python -m pytest -q "$@"
