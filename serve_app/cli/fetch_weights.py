"""`vggt-fetch-weights`: download the VGGT checkpoint (model.pt) from the Hugging Face hub and check it.

    vggt-fetch-weights                                   # facebook/VGGT-1B -> ./model.pt
    vggt-fetch-weights --out /opt/vggt/model.pt --revision <commit>
    vggt-fetch-weights --repo-id facebook/VGGT-1B-Commercial   # the checkpoint licensed for commercial use
    vggt-fetch-weights --verify-only --out /opt/vggt/model.pt  # check a file already there

The weights are Meta's, under Meta's licence for the repository they come
from (not this project's MIT licence): the command prints where to read it
before it downloads. `--revision` pins a commit (or a tag or branch) of the
repository, so every node gets the same file. The file is downloaded next to
its destination (resumable), checked (byte size, then every state-dict key
and shape against our model built on the meta device) and only then moved
into place. The hub is `HF_ENDPOINT` when set (a mirror), else
huggingface.co. Exit status: 0 ok, 1 failed check, 2 hub unreachable or bad
arguments. `scripts/fetch_weights.py` runs the same from a checkout.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

PROG = "vggt-fetch-weights"
REPO_ID = "facebook/VGGT-1B"
COMMERCIAL_REPO_ID = "facebook/VGGT-1B-Commercial"
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


def licence_notice(repo_id: str, endpoint: str) -> str:
    """Where to read the licence of `repo_id`'s weights, in one line."""
    other = (
        f"; for commercial use see {COMMERCIAL_REPO_ID} (--repo-id {COMMERCIAL_REPO_ID})"
        if repo_id == REPO_ID
        else ""
    )
    return (
        f"licence: the weights of {repo_id} are Meta's, under the licence on {endpoint.rstrip('/')}/{repo_id} "
        f"(not this project's MIT licence): read it before using them{other}"
    )


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
    from serve_app.vggt.checkpoint import (
        CheckpointError,
        check_state_dict,
        read_state_dict,
    )

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


def _offline_hint(repo_id: str = REPO_ID) -> str:
    return f"connect to the internet, or copy {FILENAME} from {repo_id} by hand"


def download(out: Path, repo_id: str = REPO_ID, revision: str | None = None) -> Path:
    """Fetch model.pt of `repo_id` (at `revision`) into <out dir>/.model.pt.download/, verify, move to `out`."""
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    what = f"{repo_id}/{FILENAME}" + (f" at revision {revision}" if revision else "")
    if constants.HF_HUB_OFFLINE:
        raise OfflineError(f"HF_HUB_OFFLINE is set: cannot download {what}; {_offline_hint(repo_id)}")
    probe_endpoint(constants.ENDPOINT)
    staging = out.parent / f".{out.name}.download"
    staging.mkdir(parents=True, exist_ok=True)
    try:
        got = Path(hf_hub_download(repo_id, FILENAME, revision=revision, local_dir=staging))
    except LocalEntryNotFoundError as exc:  # the hub could not be reached after retries
        raise OfflineError(f"cannot reach the Hugging Face hub to download {what}; {_offline_hint(repo_id)}") from exc
    except HfHubHTTPError as exc:
        raise FetchError(f"the hub refused {what}: {exc}".splitlines()[0]) from exc
    except OSError as exc:  # connection errors surfacing outside the hub's wrappers
        raise OfflineError(f"download of {what} failed: {exc}; {_offline_hint(repo_id)}") from exc
    try:
        print(verify(got))
    except FetchError:
        shutil.rmtree(staging, ignore_errors=True)  # a bad copy must not be "resumed" next time
        raise
    os.replace(got, out)
    shutil.rmtree(staging, ignore_errors=True)
    return out


def fetch(
    out: Path,
    *,
    repo_id: str = REPO_ID,
    revision: str | None = None,
    force: bool = False,
    verify_only: bool = False,
) -> int:
    """Make sure a verified checkpoint is at `out` (downloading it unless one is there or `verify_only`).

    Prints what it found or saved, or one line on stderr; the exit status (0 ok, 1 failed check,
    2 hub unreachable).
    """
    out = out.resolve()
    try:
        if verify_only:
            if not out.exists():
                raise FetchError(f"{out} does not exist; run {PROG} --out {out}")
            print(verify(out))
            return 0
        if out.exists() and not force:
            try:
                print(verify(out))
            except FetchError as exc:
                raise FetchError(f"{exc}; rerun with --force to download it again") from exc
            return 0
        from huggingface_hub import constants

        print(licence_notice(repo_id, constants.ENDPOINT), flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        saved = download(out, repo_id, revision)
        print(f"saved {saved} ({repo_id}" + (f" at revision {revision})" if revision else ")"))
        return 0
    except FetchError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code


def build_parser(default_out: Path | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Download the VGGT checkpoint (model.pt) from the Hugging Face hub and check it."
    )
    default_out = default_out or Path(FILENAME)
    parser.add_argument("--out", type=Path, default=default_out, help=f"destination (default: {default_out})")
    parser.add_argument("--repo-id", default=REPO_ID, help=f"Hugging Face repository (default: {REPO_ID})")
    parser.add_argument("--revision", help="commit (or tag, branch) of the repository to pin; default: its main branch")
    parser.add_argument("--force", action="store_true", help="download even if --out already verifies")
    parser.add_argument("--verify-only", action="store_true", help="only check the file at --out")
    return parser


def main(argv: Sequence[str] | None = None, *, default_out: Path | None = None) -> int:
    """default_out: where the checkpoint goes without --out (./model.pt; a checkout's script passes its root)."""
    args = build_parser(default_out).parse_args(argv)
    return fetch(args.out, repo_id=args.repo_id, revision=args.revision, force=args.force, verify_only=args.verify_only)


if __name__ == "__main__":
    sys.exit(main())
