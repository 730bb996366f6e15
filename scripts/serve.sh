#!/usr/bin/env bash
# Install into .venv/ if needed, then run the Ray Serve application.
# Usage: scripts/serve.sh [CONFIG]   (default config/serve.yaml; config/serve.dev.yaml runs the untrained tiny model on CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh
exec .venv/bin/serve run "${1:-config/serve.yaml}"
