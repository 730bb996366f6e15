"""vggt-export checks the checkpoint (there, keys, shapes) before it decodes anything, naming the command that fetches it."""

from __future__ import annotations

import pytest
import torch

from serve_app.cli import export_glb as cli
from serve_app.vggt import VGGT, VGGTConfig


@pytest.fixture
def undecodable(tmp_path):
    """A "photo" the decoder refuses: whichever check runs first decides the message."""
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8 not really a jpeg" * 10)
    return path


def export(capsys, *args: str) -> tuple[int, str]:
    code = cli.main([*args, "--device", "cpu", "--quiet"])
    return code, capsys.readouterr().err


def test_a_missing_checkpoint_is_refused_before_any_photo_is_decoded(tmp_path, capsys, undecodable):
    missing = tmp_path / "model.pt"
    code, err = export(capsys, "--images", str(undecodable), "--out", str(tmp_path / "x.glb"), "--checkpoint", str(missing))
    assert code == 2
    expected = (
        f"vggt-export: VGGT checkpoint not found at {missing}: put the facebook/VGGT-1B state dict (model.pt) there, "
        f"or fetch it with `vggt-fetch-weights --out {missing}`"
    )
    assert err.splitlines() == [expected]
    assert not (tmp_path / "x.glb").exists()


def test_a_checkpoint_of_another_model_is_refused_before_decoding(tmp_path, capsys, undecodable):
    small = tmp_path / "small.pt"
    torch.save(VGGT(VGGTConfig.tiny()).state_dict(), small)  # the tiny model's keys and shapes, not the 1B model's
    code, err = export(capsys, "--images", str(undecodable), "--out", str(tmp_path / "x.glb"), "--checkpoint", str(small))
    assert code == 2
    (line,) = err.splitlines()
    assert line.startswith(f"vggt-export: VGGT checkpoint {small} does not fit the model: checkpoint does not match")
    assert line.endswith(f"fetch it with `vggt-fetch-weights --out {small} --force`")


def test_the_untrained_preset_needs_no_checkpoint_and_decoding_then_names_the_photo(tmp_path, capsys, undecodable):
    code, err = export(capsys, "--images", str(undecodable), "--out", str(tmp_path / "x.glb"), "--preset", "tiny")
    assert code == 2
    assert "broken.jpg" in err and "checkpoint" not in err
