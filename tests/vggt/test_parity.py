"""Full-size VGGT-1B against reference outputs, with deterministic synthetic weights.

tests/data/vggt_parity_case.npz holds the input `images` [2, 3, 112, 224]
and the reference outputs (batch dim removed) computed in float32 on CPU
with the weights of devkit/synthetic_weights.py. Tolerance per array:
|ours - ref| <= 1e-4 * max|ref| + 1e-4 * |ref|. Runs on the CPU and, where
there is one, on a CUDA GPU in float32 (TF32 off).
Costs ~1-2 minutes and ~5.5 GB of RAM on 2 cores.
"""

import contextlib
import json
import os
import pathlib

import numpy as np
import pytest
import torch

from devkit import synthetic_weights as sw
from serve_app.vggt import VGGT
from serve_app.vggt.geometry import pose_encoding_to_extri_intri, unproject_depth_map_to_point_map

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "data"
ARRAYS = [
    "pose_enc",
    "pose_enc_list",
    "depth",
    "depth_conf",
    "world_points",
    "world_points_conf",
    "extrinsic",
    "intrinsic",
    "world_points_from_depth",
]


@contextlib.contextmanager
def exact_float32(device: str):
    """float32 math on `device`: no TF32 in CUDA matmuls and convolutions, fixed conv algorithms."""
    if device != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        (
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.deterministic,
        ) = saved


def to_cpu(out: dict) -> dict:
    return {k: [t.cpu() for t in v] if isinstance(v, list) else v.cpu() for k, v in out.items()}


CUDA = pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"))


@pytest.fixture(scope="module", params=["cpu", CUDA])
def run(request):
    """(our outputs as numpy, reference npz, keys whose weights differ from the fingerprints) on a device."""
    device = request.param
    ref = dict(np.load(DATA / "vggt_parity_case.npz"))
    fingerprints = json.loads((DATA / "vggt_weights_fingerprint.json").read_text())["per_key"]
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    try:
        with torch.device("meta"):
            model = VGGT()  # full VGGT-1B, no random init
        model.to_empty(device="cpu").eval()
        sw.fill_model(model)
        bad_weights = [k for k, v in model.state_dict().items() if sw.fingerprint(v) != fingerprints[k]]
        model.to(device)
        images = torch.from_numpy(ref["images"]).to(device)
        H, W = images.shape[-2:]
        with exact_float32(device), torch.no_grad(), torch.autocast(device, enabled=False):
            out = to_cpu(model(images))
        del model
        ours = {k: out[k][0].numpy() for k in ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")}
        ours["pose_enc_list"] = torch.stack([p[0] for p in out["pose_enc_list"]]).numpy()
        extrinsic, intrinsic = pose_encoding_to_extri_intri(out["pose_enc"][0], (H, W))
        ours["extrinsic"], ours["intrinsic"] = extrinsic.numpy(), intrinsic.numpy()
        ours["world_points_from_depth"] = unproject_depth_map_to_point_map(ours["depth"], extrinsic, intrinsic)
    finally:
        torch.set_num_threads(threads)
        if device == "cuda":
            torch.cuda.empty_cache()
    return ours, ref, bad_weights


@pytest.mark.slow
def test_weights_are_the_reference_weights(run):
    _, _, bad = run
    assert not bad, f"{len(bad)} tensors differ from the fingerprints, e.g. {bad[:5]}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ARRAYS)
def test_matches_reference(run, name):
    ours, ref, _ = run
    c, r = ours[name], ref[name]
    assert c.shape == r.shape and c.dtype == np.float32
    scale = np.abs(r).max()
    err = np.abs(c.astype(np.float64) - r)
    worst = err.max() / scale
    assert np.all(err <= 1e-4 * scale + 1e-4 * np.abs(r)), f"{name}: worst |c-r|/max|r| = {worst:.3e}"
