"""Where uploads are spooled: one folder per server process, swept when its process is gone.

Each server makes its own folder `vggt-spool-<pid>-<random>` under
`proxy.spool_dir` (or the system temp dir) and deletes it when it closes. A
process killed mid-upload (OOM, SIGKILL, a crashed replica) cannot delete
its files; the next server to start there deletes every such folder whose
process no longer runs, and `vggt-check-storage` lists (and with --repair
deletes) them too. Other servers' live folders are never touched: on one
node several ingress replicas may share the directory.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("tcp_proxy")

PREFIX = "vggt-spool-"


def make_spool_dir(parent: str) -> Path:
    """This process's spool folder, created now under `parent` ("" = the system temp dir)."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=parent or None))


def abandoned_spool_dirs(parent: str) -> list[Path]:
    """Spool folders under `parent` whose process no longer runs."""
    root = Path(parent or tempfile.gettempdir())
    try:
        candidates = [p for p in root.iterdir() if p.name.startswith(PREFIX) and p.is_dir()]
    except OSError:
        return []
    return sorted(p for p in candidates if not _running(_pid_of(p)))


def sweep_spool_dirs(parent: str) -> int:
    """Delete the abandoned spool folders under `parent`; how many went."""
    gone = 0
    for folder in abandoned_spool_dirs(parent):
        shutil.rmtree(folder, ignore_errors=True)
        if not folder.exists():
            gone += 1
            log.warning("deleted the spool folder %s left by a process that is gone", folder)
    return gone


def _pid_of(folder: Path) -> int | None:
    digits = folder.name[len(PREFIX) :].split("-", 1)[0]
    return int(digits) if digits.isdigit() else None


def _running(pid: int | None) -> bool:
    if pid is None:
        return True  # not ours to judge: leave it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True
