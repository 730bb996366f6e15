#!/usr/bin/env bash
# Install into .venv/ if needed, then run the whole test suite (extra arguments go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh test
# Debian packages the tests use, installed where we may (else the tests that need them skip and say so):
# Chromium for the browser tests, PostgreSQL's server programs for the PostgreSQL cases,
# Prometheus' promtool for the alert rule tests.
apt_install() {  # apt_install PACKAGE: quietly, refreshing the package lists once if needed
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 \
             && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$1" >/dev/null 2>&1; }; } \
        || echo "warning: could not install $1; the tests that need it will be skipped"
}
if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    if ! command -v chromium >/dev/null; then
        echo "installing Debian's chromium for the browser tests"
        apt_install chromium
    fi
    if [ -z "${PG_BIN:-}" ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
        echo "installing Debian's postgresql for the PostgreSQL tests"
        apt_install postgresql
    fi
    if ! command -v promtool >/dev/null; then
        echo "installing Debian's prometheus (promtool) for the alert rule tests"
        apt_install prometheus
    fi
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
