"""Checkpoint loading: track-head keys dropped, clear errors for everything else."""

import os

import pytest
import torch

from serve_app.vggt import VGGT, VGGTConfig
from serve_app.vggt.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    check_checkpoint,
    load_checkpoint,
    load_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_model(seed: int) -> VGGT:
    torch.manual_seed(seed)
    return VGGT(VGGTConfig.tiny()).eval()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny checkpoint with extra track_head tensors, as in the public model.pt."""
    model = tiny_model(0)
    state = dict(model.state_dict())
    state["track_head.feature_extractor.norm.weight"] = torch.ones(128)
    state["track_head.tracker.flow_head.weight"] = torch.zeros(4, 2)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    torch.save(state, path)
    return path, model


def assert_same_params(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_loads_file_and_drops_track_head(saved):
    path, source = saved
    model = tiny_model(1)
    assert load_checkpoint(model, path) is model
    assert_same_params(model, source)
    assert not any(k.startswith("track_head.") for k in model.state_dict())


def test_load_model_builds_and_fills(saved):
    path, source = saved
    model = load_model(path, "tiny")
    assert not model.training
    assert_same_params(model, source)
    x = torch.rand(2, 3, 28, 42)
    with torch.no_grad():
        assert torch.equal(model(x)["depth"], source(x)["depth"])


def test_missing_key_is_named(saved):
    _, source = saved
    state = dict(source.state_dict())
    del state["camera_head.embed_pose.bias"]
    with pytest.raises(CheckpointError, match=r"missing keys 1: camera_head\.embed_pose\.bias"):
        load_checkpoint(tiny_model(1), state)


def test_unexpected_key_is_named(saved):
    _, source = saved
    state = dict(source.state_dict())
    state["aggregator.extra_token"] = torch.zeros(3)
    with pytest.raises(CheckpointError, match=r"unexpected keys 1: aggregator\.extra_token"):
        load_checkpoint(tiny_model(1), state)


def test_shape_mismatch_is_named():
    # a full-size state dict (on the meta device: no memory) into the tiny model
    with torch.device("meta"):
        big = VGGT().state_dict()
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tiny_model(1), big)
    assert "shape mismatches" in str(err.value) and "aggregator.camera_token" in str(err.value)
    assert "(checkpoint (1, 2, 1, 1024), model (1, 2, 1, 64))" in str(err.value)


def test_missing_file_explains_where_and_how(tmp_path):
    where = tmp_path / "weights" / "model.pt"
    with pytest.raises(FileNotFoundError) as err:
        load_checkpoint(tiny_model(1), where)
    assert isinstance(err.value, CheckpointNotFoundError) and isinstance(err.value, CheckpointError)
    msg = str(err.value)
    assert str(where) in msg and "model.pt" in msg and f"`vggt-fetch-weights --out {where}`" in msg


def test_check_checkpoint_accepts_a_fitting_file_for_its_preset(saved):
    path, _ = saved
    check_checkpoint(path, VGGTConfig.tiny())  # track_head.* ignored, as when loading


def test_check_checkpoint_refuses_another_model_in_one_line_naming_the_command(saved):
    path, _ = saved
    with pytest.raises(CheckpointError) as err:
        check_checkpoint(path, "vggt-1b")  # a tiny file where the 1B model is configured
    msg = str(err.value)
    assert len(msg.splitlines()) == 1
    assert msg.startswith(f"VGGT checkpoint {path} does not fit the model: checkpoint does not match")
    assert msg.endswith(f"fetch it with `vggt-fetch-weights --out {path} --force`")


def test_check_checkpoint_refuses_a_missing_file(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="vggt-fetch-weights --out"):
        check_checkpoint(tmp_path / "model.pt", "vggt-1b")


@pytest.mark.parametrize("kind", ["garbage", "truncated", "empty"])
def test_corrupt_file_is_a_checkpoint_error(saved, tmp_path, kind):
    good, _ = saved
    data = good.read_bytes()
    bad = tmp_path / "model.pt"
    bad.write_bytes({"garbage": b"not a checkpoint" * 100, "truncated": data[: len(data) // 2], "empty": b""}[kind])
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tiny_model(1), bad)


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "model.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match="not a state dict"):
        load_checkpoint(tiny_model(1), path)
    torch.save({"model": {"a": torch.zeros(1)}}, path)
    with pytest.raises(CheckpointError, match="not a plain state dict"):
        load_checkpoint(tiny_model(1), os.fspath(path))


def test_failed_load_leaves_model_untouched(saved):
    _, source = saved
    state = {k: v + 1 for k, v in source.state_dict().items()}
    del state["depth_head.norm.bias"]
    model = tiny_model(1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError):
        load_checkpoint(model, state)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
