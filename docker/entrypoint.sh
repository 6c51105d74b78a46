#!/bin/sh
# Container entrypoint: check the model volume, then run the command (default: lanp serve) as PID 1.
set -eu
if [ "${1:-}" = "lanp" ] && [ "${2:-}" = "serve" ] && [ ! -f "${LANP_MODEL_DIR:-/models}/model.safetensors" ]; then
    echo "entrypoint: no model at ${LANP_MODEL_DIR:-/models} (mount a model directory there, see docs/deployment.md)" >&2
    exit 64
fi
exec "$@"
