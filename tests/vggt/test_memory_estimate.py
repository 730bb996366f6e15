"""The memory guard's model (runner.estimate_memory) against real forward passes.

The peak is the most bytes held at once by the tensors the forward creates
(devkit/live_memory.py): allocator-independent, so it stands for GPU
memory too. float32 and CPU bf16 autocast; full-width blocks with few layers
so that both phases (aggregator transients, DPT chunk) are exercised at
their real widths in seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch
from devkit.live_memory import LiveTensorBytes

from serve_app.vggt import VGGT, VGGTConfig
from serve_app.vggt.runner import estimate_memory

# full-width aggregator (C=1024, 16 heads, MLP 4x), four layers, all kept
SHALLOW = VGGTConfig(dino_depth=1, depth=4, keep_layers=(0, 1, 2, 3), camera_trunk_depth=1)
# same, with narrow DPT heads: the aggregator phase is the larger one
SHALLOW_SMALL_HEADS = VGGTConfig(
    dino_depth=1,
    depth=4,
    keep_layers=(0, 1, 2, 3),
    camera_trunk_depth=1,
    dpt_features=32,
    dpt_out_channels=(16, 32, 64, 64),
    dpt_hidden=16,
)
SLICED = dataclasses.replace(SHALLOW_SMALL_HEADS, token_chunk=512)

CASES = {
    # name: (config, frames, height, width, bf16 autocast, the phase that should dominate)
    "tiny-fp32": (VGGTConfig.tiny(), 3, 112, 112, False, "heads"),
    "tiny-bf16-two-chunks": (VGGTConfig.tiny(), 12, 70, 98, True, "heads"),
    "full-width-heads-fp32": (SHALLOW, 2, 224, 224, False, "heads"),
    "full-width-aggregator-fp32": (SHALLOW_SMALL_HEADS, 16, 70, 70, False, "aggregator"),
    "full-width-aggregator-bf16": (SHALLOW_SMALL_HEADS, 16, 70, 70, True, "aggregator"),
    # 1728 tokens in slices of 512: the sliced blocks' transients
    "full-width-sliced-fp32": (SLICED, 32, 98, 98, False, "aggregator"),
    "full-width-sliced-bf16": (SLICED, 32, 98, 98, True, "aggregator"),
}


@pytest.mark.parametrize("name", CASES)
def test_estimate_is_a_close_upper_bound_of_the_real_peak(name, one_thread):
    cfg, frames, height, width, bf16, dominant = CASES[name]
    torch.manual_seed(0)
    model = VGGT(cfg).eval()
    images = torch.rand(frames, 3, height, width)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.inference_mode(), autocast, LiveTensorBytes() as meter:
        model(images)
    est = estimate_memory(cfg, frames, height, width, weight_bytes=0, act_bytes=2 if bf16 else 4)
    heads = est.head_chunk + est.outputs
    assert (est.tokens > heads) == (dominant == "aggregator"), "the case does not exercise the phase it names"
    ratio = est.working / meter.peak
    assert 1.0 <= ratio <= 1.4, (
        f"estimate {est.working / 2**20:.1f} MiB vs real peak {meter.peak / 2**20:.1f} MiB (x{ratio:.2f})"
    )


def test_live_tensor_bytes_counts_new_tensors_until_they_are_freed():
    base = torch.zeros(1000)  # created outside: not counted
    with LiveTensorBytes() as meter:
        a = base + 1  # 4000 bytes
        b = a * 2  # 8000
        view = b[:10]  # a view: no new memory
        del a  # back to 4000
        c = torch.ones(500)  # 6000
        b.add_(1)  # in place: no new memory
    assert meter.peak == 8000
    assert meter.live == 6000
    del view, b, c
