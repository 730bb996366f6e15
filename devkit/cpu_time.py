"""CPU seconds a service's processes spent over a stretch of time, by what each process is (Linux /proc).

    with CpuMeter(service.process.pid) as meter:
        ...                                    # the load
    meter.by_kind                              # {"VGGTInference": 58.9, "GlbExporter": 23.3, ...}
    meter.kernel_by_kind, meter.faults_by_kind # of it in the kernel, and the minor page faults

A process counts from the meter's start, or from its own start when it
started later (a replica added by the autoscaler: its start is in its
share). A process that ended before the meter stopped is not counted.
"""

from __future__ import annotations

from collections import Counter

from devkit.processes import REPLICA_MARKER, CpuTimes, command_text, cpu_times, descendants

CONTROLLER = "ServeController"
OTHERS = "Ray's other processes"  # GCS, raylet, dashboard, proxy, log monitor, `serve run` itself


def process_kind(cmdline: str) -> str:
    """A replica's deployment name, the Serve controller, or OTHERS. (Ray titles a replica's process
    `ray::ServeReplica:<app>:<deployment>`, followed by `.<method>` while a call runs.)"""
    if REPLICA_MARKER in cmdline:
        return cmdline.split(REPLICA_MARKER, 1)[1].split()[0].rsplit(":", 1)[-1].split(".", 1)[0]
    return CONTROLLER if CONTROLLER in cmdline else OTHERS


class CpuMeter:
    """CPU seconds spent by `root` and every process below it while the `with` block ran, by process kind:
    in all (`by_kind`), the kernel's share (`kernel_by_kind`), and the minor page faults (`faults_by_kind`)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.by_kind: Counter[str] = Counter()
        self.kernel_by_kind: Counter[str] = Counter()
        self.faults_by_kind: Counter[str] = Counter()
        self._start: dict[int, CpuTimes] = {}

    def _now(self) -> dict[int, CpuTimes]:
        found = {}
        for pid in {self.root, *descendants(self.root)}:
            times = cpu_times(pid)
            if times is not None:
                found[pid] = times
        return found

    def __enter__(self) -> "CpuMeter":
        self._start = self._now()
        return self

    def __exit__(self, *exc) -> None:
        for pid, times in self._now().items():
            cmdline = command_text(pid)
            if cmdline is None:
                continue
            kind, start = process_kind(cmdline), self._start.get(pid, CpuTimes(0.0, 0.0, 0))
            self.by_kind[kind] += times.total_s - start.total_s
            self.kernel_by_kind[kind] += times.system_s - start.system_s
            self.faults_by_kind[kind] += times.minor_faults - start.minor_faults
