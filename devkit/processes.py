"""The processes of this machine as /proc shows them: trees, command lines, resident sizes (Linux)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

REPLICA_MARKER = "ServeReplica:"  # on the command line of every Ray Serve replica process
TICKS_PER_S = os.sysconf("SC_CLK_TCK")  # the unit of /proc's CPU times


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, the state first (`man 5 proc`: field 3 on);
    None when `pid` is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()  # the command name, in parentheses, may hold spaces


@dataclass(frozen=True)
class CpuTimes:
    """What /proc/<pid>/stat says a process has spent so far (its threads included)."""

    user_s: float
    system_s: float  # in the kernel on its behalf: system calls, and page faults (zero-filling fresh pages)
    minor_faults: int  # page faults served without reading the disk (a fresh page, or one already cached)

    @property
    def total_s(self) -> float:
        return self.user_s + self.system_s


def cpu_times(pid: int) -> CpuTimes | None:
    """`pid`'s CPU times and minor page faults so far; None when it is gone."""
    fields = stat_fields(pid)
    if fields is None:
        return None
    return CpuTimes(int(fields[11]) / TICKS_PER_S, int(fields[12]) / TICKS_PER_S, int(fields[7]))  # utime, stime, minflt


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of `pid` so far (its threads included); None when it is gone."""
    times = cpu_times(pid)
    return None if times is None else times.total_s


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for pid in _pids():
        fields = stat_fields(pid)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(pid)  # by the parent's pid
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


def command_text(pid: int) -> str | None:
    """The command line of `pid` as one string (arguments separated by spaces), None when it is gone."""
    raw = command_line(pid)
    return None if raw is None else raw.replace(b"\0", b" ").decode(errors="replace")


def pids_naming(marker: bytes) -> list[int]:
    """The processes whose command line holds `marker`, this one excepted."""
    return [pid for pid in _pids() if pid != os.getpid() and marker in (command_line(pid) or b"")]


def replica_processes(root: int | None = None) -> dict[int, str]:
    """pid -> command line of the Serve replica processes (under `root` when given)."""
    found = {}
    for pid in descendants(root) if root else _pids():
        cmdline = command_text(pid)
        if cmdline is not None and REPLICA_MARKER in cmdline:
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
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def kill(pid: int) -> None:
    """SIGKILL `pid`, if it is still there."""
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
