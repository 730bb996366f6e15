"""The processes of this machine as /proc shows them: trees, command lines, resident sizes (Linux)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

REPLICA_MARKER = "ServeReplica:"  # on the command line of every Ray Serve replica process


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid in _pids():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(pid)
    return children


def descendants(root: int) -> set[int]:
    """Every process below `root` (not `root` itself)."""
    children, found, todo = _children_map(), set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def command_line(pid: int) -> bytes | None:
    """The raw command line of `pid` (arguments separated by NUL), None when it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def pids_naming(marker: bytes) -> list[int]:
    """The processes whose command line holds `marker`, this one excepted."""
    return [pid for pid in _pids() if pid != os.getpid() and marker in (command_line(pid) or b"")]


def replica_processes(root: int | None = None) -> dict[int, str]:
    """pid -> command line of the Serve replica processes (under `root` when given)."""
    found = {}
    for pid in descendants(root) if root else _pids():
        raw = command_line(pid)
        if raw is None:
            continue
        cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        if REPLICA_MARKER in cmdline:
            found[pid] = cmdline.strip()
    return found


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill(pid: int) -> None:
    """SIGKILL `pid`, if it is still there."""
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
