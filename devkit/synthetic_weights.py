"""Deterministic stand-in weights for VGGT-1B: the parity test and the benchmarks.

Every tensor depends only on its state-dict key and shape, so any model
with the checkpoint's key names receives exactly the weights the reference
outputs in tests/data/vggt_parity_case.npz were computed with.

Rule:
  stream: Mersenne-twister integers k in [0, 2**24), torch.Generator seeded
          with crc32(key), numel draws, row-major;
          xi = sqrt(3) * ((k + 0.5) / 2**23 - 1)   (float64, mean 0, var 1)
  value (first match, leaf = last dotted component):
    camera_head.pose_branch.fc2.bias -> BIAS_MEANS + 0.01 * xi
    leaf "gamma"                     -> 0.1 * (1 + 0.2 * xi)
    leaf "weight", 1-D               -> 1 + 0.1 * xi
    leaf ending in "bias"            -> 0.02 * xi
    leaf ending in "weight", >= 2-D  -> gain * xi / sqrt(prod(shape[1:]))
    anything else (tokens, pos_embed) -> 0.5 * xi
  computed in float64, rounded once to the target dtype.
Integers (not torch.randn) keep the values identical across CPUs.
"""

from __future__ import annotations

import hashlib
import math
import zlib

import torch

BIAS_MEANS = {
    # the pose bias is added in each of the 4 refinement steps: quaternion w and FoVs end near 1
    "camera_head.pose_branch.fc2.bias": (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25, 0.25, 0.25),
}
GAINS = {
    "camera_head.pose_branch.fc2.weight": 0.1,  # small pose steps keep the FoVs inside (0, pi)
    "track_head.tracker.updateformer.flow_head.weight": 0.03,
}


def standard_stream(key: str, count: int) -> torch.Tensor:
    """[count] float64, zero mean, unit variance, a pure function of key."""
    gen = torch.Generator(device="cpu").manual_seed(zlib.crc32(key.encode("utf-8")))
    ints = torch.randint(0, 1 << 24, (count,), generator=gen, dtype=torch.int64)
    unit = (ints.double() + 0.5) / float(1 << 23) - 1.0  # uniform on (-1, 1)
    return unit * math.sqrt(3.0)


def synthetic_tensor(key: str, shape, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    shape = tuple(int(d) for d in shape)
    xi = standard_stream(key, math.prod(shape))
    leaf = key.rsplit(".", 1)[-1]
    if key in BIAS_MEANS:
        value = torch.tensor(BIAS_MEANS[key], dtype=torch.float64) + 0.01 * xi
    elif leaf == "gamma":
        value = 0.1 * (1.0 + 0.2 * xi)
    elif leaf == "weight" and len(shape) == 1:
        value = 1.0 + 0.1 * xi
    elif leaf.endswith("bias"):
        value = 0.02 * xi
    elif leaf.endswith("weight"):
        value = GAINS.get(key, 1.0) * xi / math.sqrt(math.prod(shape[1:]))
    else:
        value = 0.5 * xi
    return value.reshape(shape).to(dtype)


@torch.no_grad()
def fill_model(model: torch.nn.Module) -> None:
    """Overwrite every floating tensor of model.state_dict() in place, key by key."""
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            tensor.copy_(synthetic_tensor(key, tensor.shape, tensor.dtype))


def fingerprint(tensor: torch.Tensor) -> str:
    """First 16 hex digits of sha256 over the float32 little-endian bytes."""
    data = tensor.detach().to(torch.float32).contiguous().cpu().numpy().astype("<f4", copy=False)
    return hashlib.sha256(data.tobytes()).hexdigest()[:16]
