"""Our synthetic-weight rule reproduces the reference fingerprints bit for bit."""

import json
import math
import pathlib

import pytest

from devkit import synthetic_weights as sw

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "data"

KEYS = json.loads((DATA / "vggt_manifest.json").read_text())["keys"]
FINGERPRINTS = json.loads((DATA / "vggt_weights_fingerprint.json").read_text())["per_key"]
# every rule: tokens, pos_embed, conv, conv-transpose, linear, gamma, norm, bias, special, gains
LARGE_SAMPLES = {
    "aggregator.patch_embed.pos_embed",
    "aggregator.patch_embed.patch_embed.proj.weight",
    "depth_head.resize_layers.0.weight",
    "camera_head.pose_branch.fc1.weight",
}


def matches(entry) -> bool:
    return sw.fingerprint(sw.synthetic_tensor(entry["name"], entry["shape"])) == FINGERPRINTS[entry["name"]]


def test_manifest_and_fingerprints_agree():
    assert len(KEYS) == 1797 and set(FINGERPRINTS) == {k["name"] for k in KEYS}


def test_small_keys_and_samples_match_fingerprints():
    chosen = [k for k in KEYS if math.prod(k["shape"]) <= 100_000 or k["name"] in LARGE_SAMPLES]
    assert len(chosen) > 1300
    bad = [k["name"] for k in chosen if not matches(k)]
    assert not bad, f"{len(bad)} keys differ, e.g. {bad[:5]}"


@pytest.mark.slow
def test_all_keys_match_fingerprints():
    bad = [k["name"] for k in KEYS if not matches(k)]
    assert not bad, f"{len(bad)} keys differ, e.g. {bad[:5]}"
