#!/usr/bin/env bash
# The checks that need a CUDA GPU, in parts that each fit a 10-minute run.
#
#   scripts/gpu_checks.sh tests              # tests/vggt on the GPU (float32 parity with TF32 off, bf16 runner)
#   scripts/gpu_checks.sh bench              # bench_vggt: 1..500 frames in bf16, naive baseline up to 50
#   scripts/gpu_checks.sh bench-bf16-weights # the same with the aggregator weights held in bf16
#   scripts/gpu_checks.sh upstream DIR       # side by side with the reference checkout in DIR
#   scripts/gpu_checks.sh attention          # 20/100/200 frames with each attention kernel forced
#
# Uses $PYTHON (default: python3, which must have torch with CUDA, numpy,
# pillow, pytest and hypothesis) and writes each part's log to $OUT (default
# dev_out/) as gpu_<part>.log. The project's packages (serve_app, tcp_proxy,
# devkit) are imported from this checkout, installed or not. A bare GPU image
# without the pure-Python annotated-types package gets the copy in this
# checkout's .venv (carry .venv/lib/python3.11/site-packages/annotated_types).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-dev_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PYTHON" -c 'import annotated_types' 2>/dev/null; then
    for copy in .venv/lib/python3*/site-packages/annotated_types; do
        if [ -d "$copy" ]; then
            mkdir -p "$OUT/pure" && cp -r "$copy" "$OUT/pure/"
            export PYTHONPATH="$PYTHONPATH:$PWD/$OUT/pure"
            break
        fi
    done
fi

part=${1:-}
case "$part" in
    tests | bench | bench-bf16-weights | upstream | attention) ;;
    *)
        sed -n '2,12p' "$0" >&2
        exit 2
        ;;
esac
log="$OUT/gpu_${part}.log"
{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    "$PYTHON" -c 'import torch; print("torch", torch.__version__, torch.version.cuda, torch.cuda.get_device_name())'
} | tee "$log"

case "$part" in
    tests)
        "$PYTHON" -m pytest -q -p no:cacheprovider tests/vggt 2>&1 | tee -a "$log"
        ;;
    bench)
        "$PYTHON" scripts/bench_vggt.py --device cuda --synthetic --frames 1 8 20 50 100 200 500 \
            --baseline-max-frames 50 2>&1 | tee -a "$log"
        ;;
    bench-bf16-weights)
        "$PYTHON" scripts/bench_vggt.py --device cuda --synthetic --weights-bf16 --frames 1 20 100 200 500 \
            --no-baseline 2>&1 | tee -a "$log"
        ;;
    upstream)
        dir=${2:?usage: scripts/gpu_checks.sh upstream DIR}
        "$PYTHON" scripts/bench_vggt.py --device cuda --synthetic --upstream "$dir" --frames 1 20 100 200 \
            --repeats 3 2>&1 | tee -a "$log"
        ;;
    attention)
        for backend in flash cudnn efficient; do
            "$PYTHON" scripts/bench_vggt.py --device cuda --synthetic --sdpa-backend "$backend" --frames 20 100 200 \
                --no-baseline 2>&1 | tee -a "$log"
        done
        ;;
esac
