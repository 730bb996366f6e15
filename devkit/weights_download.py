"""Download the VGGT-1B checkpoint (model.pt) from the Hugging Face hub and check it
(scripts/fetch_weights.py).

The file is downloaded next to its destination (resumable), checked (byte
size, then every state-dict key and shape against our model built on the
meta device) and only then moved into place. Exit status: 0 ok, 1 failed
check, 2 hub unreachable.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

REPO_ID = "facebook/VGGT-1B"
FILENAME = "model.pt"

# 1797 float32 tensors holding 1,256,537,516 parameters (facebook/VGGT-1B).
EXPECTED_TENSORS = 1797
EXPECTED_PARAMS = 1_256_537_516
EXPECTED_DATA_BYTES = 4 * EXPECTED_PARAMS  # 5,026,150,064 bytes of tensor data (~5.03 GB)
# The zip container adds a pickled index and ~64-byte-aligned records per tensor: well under this.
CONTAINER_SLACK_BYTES = 64 * 1024 * 1024


class FetchError(Exception):
    """A failure with a one-line message for the user."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class OfflineError(FetchError):
    def __init__(self, message: str):
        super().__init__(message, exit_code=2)


def check_size(path: Path, data_bytes: int = EXPECTED_DATA_BYTES, slack: int = CONTAINER_SLACK_BYTES) -> int:
    """Raise FetchError unless data_bytes <= size <= data_bytes + slack; return the size."""
    size = path.stat().st_size
    if not data_bytes <= size <= data_bytes + slack:
        raise FetchError(
            f"{path} is {size:,} bytes; a complete checkpoint is {data_bytes:,} to "
            f"{data_bytes + slack:,} bytes (truncated or wrong file?)"
        )
    return size


def reference_model():
    """Our full-size VGGT built on the meta device: its state-dict keys and shapes, no memory."""
    import torch

    from serve_app.vggt import VGGT, VGGTConfig

    with torch.device("meta"):
        return VGGT(VGGTConfig())


def check_keys(path: Path, model=None) -> int:
    """Raise FetchError unless the file's keys and shapes are exactly `model`'s; return its tensor count.

    Uses the same rule as loading (track_head.* is ignored); the file is
    memory-mapped, so only its index is read. `model` defaults to VGGT-1B.
    """
    from serve_app.vggt.checkpoint import CheckpointError, check_state_dict, read_state_dict

    if model is None:
        model = reference_model()
    try:
        state = read_state_dict(path)
        check_state_dict(model, state)
    except CheckpointError as exc:
        raise FetchError(str(exc)) from exc
    return len(state)


def verify(path: Path) -> str:
    """Size check, then key/shape check; returns a one-line summary."""
    size = check_size(path)
    count = check_keys(path)
    if count != EXPECTED_TENSORS:  # the track head we do not build is in the file too
        raise FetchError(f"{path} holds {count} tensors, the VGGT-1B checkpoint has {EXPECTED_TENSORS}")
    return f"{path}: {size:,} bytes, {count} tensors, keys and shapes match"


def _proxy_configured() -> bool:
    names = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
    return any(os.environ.get(n) or os.environ.get(n.lower()) for n in names)


def probe_endpoint(endpoint: str, timeout: float = 5.0) -> None:
    """Fail fast with OfflineError when the hub's host cannot be reached at all.

    Skipped behind a proxy, where a direct connection says nothing.
    """
    if _proxy_configured():
        return
    url = urlparse(endpoint)
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        raise OfflineError(f"cannot reach {endpoint} ({exc.__class__.__name__}: {exc}); {_offline_hint()}") from exc


def _offline_hint() -> str:
    return f"connect to the internet, or copy {FILENAME} from {REPO_ID} by hand"


def download(out: Path) -> Path:
    """Fetch model.pt into <out dir>/.model.pt.download/, verify, move to `out`."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if constants.HF_HUB_OFFLINE:
        raise OfflineError(f"HF_HUB_OFFLINE is set: cannot download {FILENAME}; {_offline_hint()}")
    probe_endpoint(constants.ENDPOINT)
    staging = out.parent / f".{out.name}.download"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        got = Path(hf_hub_download(REPO_ID, FILENAME, local_dir=staging))
    except LocalEntryNotFoundError as exc:  # the hub could not be reached after retries
        raise OfflineError(
            f"cannot reach the Hugging Face hub to download {REPO_ID}/{FILENAME}; {_offline_hint()}"
        ) from exc
    except HfHubHTTPError as exc:
        raise FetchError(f"the hub refused {REPO_ID}/{FILENAME}: {exc}".splitlines()[0]) from exc
    except OSError as exc:  # connection errors surfacing outside the hub's wrappers
        raise OfflineError(f"download of {REPO_ID}/{FILENAME} failed: {exc}; {_offline_hint()}") from exc
    try:
        print(verify(got))
    except FetchError:
        shutil.rmtree(staging, ignore_errors=True)  # a bad copy must not be "resumed" next time
        raise
    os.replace(got, out)
    shutil.rmtree(staging, ignore_errors=True)
    return out


def fetch(out: Path, *, force: bool = False, verify_only: bool = False) -> int:
    """Make sure a verified checkpoint is at `out` (downloading it unless one is there or `verify_only`).

    Prints what it found or saved, or one line on stderr; the exit status (0 ok, 1 failed check,
    2 hub unreachable).
    """
    out = out.resolve()
    try:
        if verify_only:
            if not out.exists():
                raise FetchError(f"{out} does not exist; run python scripts/fetch_weights.py")
            print(verify(out))
            return 0
        if out.exists() and not force:
            try:
                print(verify(out))
            except FetchError as exc:
                raise FetchError(f"{exc}; rerun with --force to download it again") from exc
            return 0
        out.parent.mkdir(parents=True, exist_ok=True)
        print(f"saved {download(out)}")
        return 0
    except FetchError as exc:
        print(f"fetch_weights: {exc}", file=sys.stderr)
        return exc.exit_code
