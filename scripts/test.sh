#!/usr/bin/env bash
# Install into .venv/ if needed, then run the whole test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh
if [ -d .venv/gltf-validator/node_modules/gltf-validator ]; then
    export GLTF_VALIDATOR_DIR="$PWD/.venv/gltf-validator"
fi
exec .venv/bin/python -m pytest "$@"
