"""scripts/fetch_weights.py and serve_app/cli/fetch_weights.py without the network: offline message, size and key checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fetch_weights.py"


@pytest.fixture(scope="module")
def fw():
    from serve_app.cli import fetch_weights

    return fetch_weights


def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and not k.startswith("HF_")}
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # discard port: nothing listens
    env["HF_HOME"] = str(tmp_path / "hf_home")  # no cached copy to fall back on
    return env


def test_offline_gives_one_line_and_nonzero_exit(tmp_path):
    out = tmp_path / "model.pt"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out)],
        env=_offline_env(tmp_path),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "cannot reach" in lines[0] and "127.0.0.1:9" in lines[0]
    assert not out.exists()


def test_hub_error_after_retries_is_reported_as_offline(fw, tmp_path, monkeypatch):
    from huggingface_hub.errors import LocalEntryNotFoundError

    def refuse(*args, **kwargs):
        raise LocalEntryNotFoundError("connection refused")

    monkeypatch.setattr(fw, "probe_endpoint", lambda endpoint: None)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", refuse)
    with pytest.raises(fw.OfflineError, match="cannot reach the Hugging Face hub"):
        fw.download(tmp_path / "model.pt")


def test_expected_size_constants(fw):
    assert fw.EXPECTED_DATA_BYTES == 5_026_150_064
    assert fw.EXPECTED_TENSORS == 1797


def test_check_size_on_small_fake_file(fw, tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"\0" * 1000)
    assert fw.check_size(path, data_bytes=1000, slack=10) == 1000
    assert fw.check_size(path, data_bytes=995, slack=10) == 1000
    with pytest.raises(fw.FetchError, match="truncated"):
        fw.check_size(path, data_bytes=2000, slack=10)
    with pytest.raises(fw.FetchError):
        fw.check_size(path, data_bytes=100, slack=10)
    with pytest.raises(fw.FetchError):
        fw.check_size(path)  # the real figure: a 1000-byte file is far too small


def test_check_keys_on_small_fake_checkpoint(fw, tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))  # keys 0.weight [2,3], 0.bias [2]
    path = tmp_path / "model.pt"
    torch.save({"0.weight": torch.zeros(2, 3), "0.bias": torch.zeros(2), "track_head.x": torch.zeros(1)}, path)
    assert fw.check_keys(path, model) == 3  # track_head.* is ignored, as when loading
    torch.save({"0.weight": torch.zeros(2, 3)}, path)
    with pytest.raises(fw.FetchError, match="missing"):
        fw.check_keys(path, model)
    torch.save({"0.weight": torch.zeros(3, 2), "0.bias": torch.zeros(2)}, path)
    with pytest.raises(fw.FetchError, match="shape"):
        fw.check_keys(path, model)
    torch.save({"0.weight": torch.zeros(2, 3), "0.bias": torch.zeros(2), "extra": torch.zeros(1)}, path)
    with pytest.raises(fw.FetchError, match="unexpected"):
        fw.check_keys(path, model)


def test_check_keys_rejects_garbage(fw, tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(fw.FetchError, match="unreadable"):
        fw.check_keys(path, torch.nn.Linear(1, 1))


def test_reference_model_matches_the_checkpoint_figures(fw):
    """Our model plus the 65,941,396 track-head parameters we do not build = the public checkpoint."""
    state = fw.reference_model().state_dict()
    total = sum(t.numel() for t in state.values())
    assert total + 65_941_396 == fw.EXPECTED_PARAMS
    assert all(t.device.type == "meta" for t in state.values())


def _fake_hub(monkeypatch, fw):
    def fake_download(repo_id, filename, revision=None, local_dir=None):
        path = Path(local_dir) / filename
        path.write_bytes(b"weights")
        return str(path)

    monkeypatch.setattr(fw, "probe_endpoint", lambda endpoint: None)
    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)


def test_download_moves_the_verified_file_into_place(fw, tmp_path, monkeypatch):
    _fake_hub(monkeypatch, fw)
    monkeypatch.setattr(fw, "verify", lambda path: f"{path}: ok")
    out = fw.download(tmp_path / "model.pt")
    assert out.read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]  # staging removed


def test_download_failing_verification_leaves_nothing(fw, tmp_path, monkeypatch):
    _fake_hub(monkeypatch, fw)  # a 7-byte "checkpoint" fails the size check
    with pytest.raises(fw.FetchError, match="truncated"):
        fw.download(tmp_path / "model.pt")
    assert list(tmp_path.iterdir()) == []


def test_verify_also_counts_the_track_head_tensors(fw, tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    torch.save({"0.weight": torch.zeros(2, 3), "0.bias": torch.zeros(2)}, path)
    monkeypatch.setattr(fw, "check_size", lambda p: p.stat().st_size)
    monkeypatch.setattr(fw, "reference_model", lambda: torch.nn.Sequential(torch.nn.Linear(3, 2)))
    with pytest.raises(fw.FetchError, match="holds 2 tensors"):
        fw.verify(path)
    monkeypatch.setattr(fw, "EXPECTED_TENSORS", 2)
    assert "keys and shapes match" in fw.verify(path)
