#!/usr/bin/env bash
# Create .venv/ and install the project with its test tools, PostgreSQL driver and S3 client into it.
# Re-running is fast: pip runs again only when pyproject.toml or the extras below have changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "creating .venv/ with $($python --version)"
    "$python" -m venv .venv
fi

extras="test,postgres,s3"
stamp=".venv/.installed-$( (cat pyproject.toml; echo "$extras") | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    echo "installing the project into .venv/ (first run takes a few minutes)"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[$extras]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi

# The Khronos glTF validator (npm) checks exported GLBs in the tests; skipped where npm is absent.
validator=.venv/gltf-validator
if command -v npm >/dev/null && [ ! -d "$validator/node_modules/gltf-validator" ]; then
    echo "installing the Khronos glTF validator into $validator/"
    npm install --silent --no-audit --no-fund --prefix "$validator" gltf-validator@2.0.0-dev.3.10 >/dev/null \
        || echo "warning: could not install gltf-validator; its test will be skipped"
fi

# three.js (npm) for the share pages the service serves itself (no CDN).
web=.venv/web
if command -v npm >/dev/null && [ ! -f "$web/node_modules/three/build/three.module.js" ]; then
    echo "installing three.js into $web/"
    npm install --silent --no-audit --no-fund --prefix "$web" three@0.187.0 >/dev/null \
        || echo "warning: could not install three.js; share pages will offer the download only"
fi

