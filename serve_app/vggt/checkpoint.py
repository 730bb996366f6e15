"""Loading the facebook/VGGT-1B state dict (model.pt) into our VGGT.

The checkpoint is a plain state dict saved with torch.save. Its
`track_head.*` tensors (point tracking, which we do not serve) are dropped;
every other key must match the model exactly, by name and shape.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping

import torch

from .config import VGGTConfig, preset
from .model import VGGT

IGNORED_PREFIXES = ("track_head.",)  # in the checkpoint, not in our model
FETCH_COMMAND = "vggt-fetch-weights"  # serve_app.cli.fetch_weights (scripts/fetch_weights.py in a checkout)
_MAX_LISTED = 10


class CheckpointError(ValueError):
    """The checkpoint cannot be used: unreadable, not a state dict, or keys/shapes do not match."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint file at the configured path."""


def fetch_hint(where: str, *, replace: bool = False) -> str:
    """How to get the checkpoint to `where` (over a file already there if `replace`): the command, ready to run."""
    return f"fetch it with `{FETCH_COMMAND} --out {where}{' --force' if replace else ''}`"


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    more = f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else ""
    return f"{len(keys)}: {shown}{more}"


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """torch.load a state dict (weights_only, memory-mapped, on CPU) with clear errors."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"VGGT checkpoint path {os.path.abspath(path)} is a directory, not the model.pt file")
    if not os.path.isfile(path):
        where = os.path.abspath(path)
        raise CheckpointNotFoundError(
            f"VGGT checkpoint not found at {where}: put the facebook/VGGT-1B state dict (model.pt) "
            f"there, or {fetch_hint(where)}"
        )
    try:
        # mmap needs the zip format of torch.save (the default since torch 1.6)
        state = torch.load(path, weights_only=True, map_location="cpu", mmap=zipfile.is_zipfile(path))
    except Exception as exc:  # zip/pickle errors come in many types
        raise CheckpointError(
            f"VGGT checkpoint {os.path.abspath(path)} is unreadable (truncated, corrupt or not a "
            f"torch.save file: {_short_reason(exc)}); delete it and {fetch_hint(os.path.abspath(path))}"
        ) from exc
    return _check_is_state_dict(state, path)


def _short_reason(exc: Exception) -> str:
    if isinstance(exc, pickle.UnpicklingError):  # its text advises weights_only=False: not for us
        return "UnpicklingError: not a pickled state dict"
    lines = str(exc).strip().splitlines() or [""]
    return f"{type(exc).__name__}: {lines[0].split('. ')[0][:200]}"


def _check_is_state_dict(state, origin: str) -> dict[str, torch.Tensor]:
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{origin} holds a {type(state).__name__}, not a state dict of tensors")
    bad = [str(k) for k, v in state.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{origin} is not a plain state dict; non-tensor entries {_listing(bad)}")
    return dict(state)


def check_state_dict(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop ignored keys, then require exactly the model's keys and shapes (else CheckpointError)."""
    state = {k: v for k, v in state.items() if not k.startswith(IGNORED_PREFIXES)}
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_listing(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches {_listing(mismatched)}")
    if problems:
        raise CheckpointError("checkpoint does not match the VGGT model: " + "; ".join(problems))
    return state


def check_checkpoint(path: str | os.PathLike, config: VGGTConfig | str) -> None:
    """Refuse, in one line naming the command that fetches it, a checkpoint that is missing, unreadable or
    whose keys and shapes are not those of the model for `config`. Cheap: only the file's index is read
    (memory-mapped) and the model is built on the meta device; run it before any other work."""
    if isinstance(config, str):
        config = preset(config)
    state = read_state_dict(path)
    with torch.device("meta"):
        model = VGGT(config)
    try:
        check_state_dict(model, state)
    except CheckpointError as exc:
        raise CheckpointError(
            f"VGGT checkpoint {os.path.abspath(path)} does not fit the model: {exc}; "
            f"{fetch_hint(os.path.abspath(path), replace=True)}"
        ) from None


def load_checkpoint(
    model: torch.nn.Module, path_or_state_dict: str | os.PathLike | Mapping[str, torch.Tensor], *, assign: bool = False
) -> torch.nn.Module:
    """Load a checkpoint file (or an in-memory state dict) into `model`; returns `model`.

    track_head.* keys are dropped; any other missing or unexpected key or
    shape mismatch raises CheckpointError naming the keys. A missing file
    raises CheckpointNotFoundError (also a FileNotFoundError). With
    assign=True the model's parameters become the loaded tensors (no copy;
    use it with a model built on the meta device).
    """
    if isinstance(path_or_state_dict, Mapping):
        state = _check_is_state_dict(path_or_state_dict, "the given state dict")
    else:
        state = read_state_dict(path_or_state_dict)
    state = check_state_dict(model, state)
    model.load_state_dict(state, strict=True, assign=assign)
    return model


def load_model(
    path: str | os.PathLike, config: VGGTConfig | str | None = None, device: str | torch.device = "cpu"
) -> VGGT:
    """Build VGGT without random init and fill it from `path`, in eval mode on `device`.

    The parameters are the memory-mapped checkpoint tensors (no second copy
    on CPU) until moved to another device.
    """
    if isinstance(config, str):
        config = preset(config)
    state = read_state_dict(path)  # fail fast, before building anything
    with torch.device("meta"):
        model = VGGT(config)
    load_checkpoint(model, state, assign=True)
    return model.to(device).eval()
