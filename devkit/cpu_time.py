"""CPU seconds a service's processes spent over a stretch of time, by what each process is (Linux /proc).

    with CpuMeter(service.process.pid) as meter:
        ...                                    # the load
    meter.by_kind                              # {"VGGTInference": 58.9, "GlbExporter": 23.3, ...}

A process counts from the meter's start, or from its own start when it
started later (a replica added by the autoscaler: its start is in its
share). A process that ended before the meter stopped is not counted.
"""

from __future__ import annotations

from collections import Counter

from devkit.processes import REPLICA_MARKER, command_text, cpu_seconds, descendants

CONTROLLER = "ServeController"
OTHERS = "Ray's other processes"  # GCS, raylet, dashboard, proxy, log monitor, `serve run` itself


def process_kind(cmdline: str) -> str:
    """A replica's deployment name, the Serve controller, or OTHERS. (Ray titles a replica's process
    `ray::ServeReplica:<app>:<deployment>`, followed by `.<method>` while a call runs.)"""
    if REPLICA_MARKER in cmdline:
        return cmdline.split(REPLICA_MARKER, 1)[1].split()[0].rsplit(":", 1)[-1].split(".", 1)[0]
    return CONTROLLER if CONTROLLER in cmdline else OTHERS


class CpuMeter:
    """CPU seconds spent by `root` and every process below it while the `with` block ran, by process kind."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.by_kind: Counter[str] = Counter()
        self._start: dict[int, float] = {}

    def _now(self) -> dict[int, float]:
        found = {}
        for pid in {self.root, *descendants(self.root)}:
            seconds = cpu_seconds(pid)
            if seconds is not None:
                found[pid] = seconds
        return found

    def __enter__(self) -> "CpuMeter":
        self._start = self._now()
        return self

    def __exit__(self, *exc) -> None:
        for pid, seconds in self._now().items():
            cmdline = command_text(pid)
            if cmdline is not None:
                self.by_kind[process_kind(cmdline)] += seconds - self._start.get(pid, 0.0)
