#!/usr/bin/env bash
# Create .venv/ and install the project into it.
# Usage: scripts/setup_venv.sh [serve|test]
#   serve (default): what the service runs on: the project, its PostgreSQL driver and S3 client, three.js
#   test:            the same plus the test tools (pytest, hypothesis, a local S3 server) and the glTF validator
# Re-running is fast: pip runs again only when pyproject.toml has changed or the set grows.
set -euo pipefail
cd "$(dirname "$0")/.."

set_name=${1:-serve}
case "$set_name" in
    serve) extras="postgres,s3" ;;
    test) extras="postgres,s3,test" ;;
    *) echo "scripts/setup_venv.sh: unknown set '$set_name' (serve or test)" >&2; exit 2 ;;
esac

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "scripts/setup_venv.sh: needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
    exit 2
fi
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv/ with $($python --version)"
    "$python" -m venv .venv
fi

# One stamp per pyproject.toml and set; the test set includes the serving one.
project=$(sha256sum pyproject.toml | cut -c1-16)
stamp=".venv/.installed-$project-$set_name"
if [ ! -f "$stamp" ] && ! { [ "$set_name" = serve ] && [ -f ".venv/.installed-$project-test" ]; }; then
    echo "installing the project ($set_name) into .venv/ (first run takes a few minutes)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[$extras]"
    find .venv -maxdepth 1 -name '.installed-*' ! -name ".installed-$project-*" -delete
    touch "$stamp"
fi

# three.js (npm) for the share pages the service serves itself (no CDN).
web=.venv/web
if command -v npm >/dev/null && [ ! -f "$web/node_modules/three/build/three.module.js" ]; then
    echo "installing three.js into $web/"
    npm install --silent --no-audit --no-fund --prefix "$web" three@0.187.0 >/dev/null \
        || echo "warning: could not install three.js; share pages will offer the download only"
fi

# The Khronos glTF validator (npm) checks exported GLBs in the tests; skipped where npm is absent.
validator=.venv/gltf-validator
if [ "$set_name" = test ] && command -v npm >/dev/null && [ ! -d "$validator/node_modules/gltf-validator" ]; then
    echo "installing the Khronos glTF validator into $validator/"
    npm install --silent --no-audit --no-fund --prefix "$validator" gltf-validator@2.0.0-dev.3.10 >/dev/null \
        || echo "warning: could not install gltf-validator; its test will be skipped"
fi
