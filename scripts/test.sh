#!/usr/bin/env bash
# Install into .venv/ if needed, then run the whole test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh
# A real browser for the share page test: Debian's Chromium (installed where we may, else that test skips).
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing Debian's chromium for the browser tests"
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; } \
        || echo "warning: could not install chromium; the browser test will be skipped"
fi
# The phone app's viewer (Babylon.js and its loaders, as the app loads them) for the viewer test.
viewer=.venv/viewer-test
if command -v npm >/dev/null && [ ! -f "$viewer/node_modules/babylonjs/babylon.js" ]; then
    echo "installing Babylon.js into $viewer/"
    npm install --silent --no-audit --no-fund --prefix "$viewer" babylonjs@9.28.0 babylonjs-loaders@9.28.0 >/dev/null \
        || echo "warning: could not install Babylon.js; the phone viewer test will be skipped"
fi
if [ -d .venv/gltf-validator/node_modules/gltf-validator ]; then
    export GLTF_VALIDATOR_DIR="$PWD/.venv/gltf-validator"
fi
exec .venv/bin/python -m pytest "$@"
