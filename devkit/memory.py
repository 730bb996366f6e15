"""Memory of the service's processes: snapshots, and peaks sampled in a thread while code runs."""

from __future__ import annotations

import os
import threading
from typing import Callable

from devkit.processes import replica_processes, rss_bytes

Measure = Callable[[], "int | None"]  # bytes now; None when there is nothing to measure


class Sampler:
    """Calls `sample()` every `every_s` seconds in a thread while inside the `with` block."""

    def __init__(self, every_s: float):
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def sample(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)


class PeakSampler(Sampler):
    """`measure()` on entry (`before`), then its peak, sampled every `every_s` while in the `with`."""

    def __init__(self, measure: Measure, every_s: float):
        super().__init__(every_s)
        self.measure = measure
        self.before: int | None = None
        self.peak: int | None = None

    def __enter__(self) -> "PeakSampler":
        self.before = self.peak = self.measure()
        return super().__enter__()

    def sample(self) -> None:
        value = self.measure()
        if value is not None:
            self.peak = value if self.peak is None else max(self.peak, value)

    @property
    def growth(self) -> int | None:
        return None if self.before is None or self.peak is None else self.peak - self.before


class ReplicaMemory(Sampler):
    """Peak RSS of the TCPIngress replica and of all Serve replicas together (below `root` when given)."""

    def __init__(self, root: int | None = None, every_s: float = 0.5):
        super().__init__(every_s)
        self.root = root
        self.ingress_peak = self.total_peak = 0

    def sample(self) -> None:
        replicas = {pid: (cmd, rss_bytes(pid)) for pid, cmd in replica_processes(self.root).items()}
        ingress = sum(rss for cmd, rss in replicas.values() if "TCPIngress" in cmd)
        self.ingress_peak = max(self.ingress_peak, ingress)
        self.total_peak = max(self.total_peak, sum(rss for _, rss in replicas.values()))


def ingress_rss(root: int | None = None) -> int | None:
    """RSS of the TCPIngress replica process(es) (below `root` when given); None if there is none."""
    pids = [pid for pid, cmd in replica_processes(root).items() if "TCPIngress" in cmd]
    return sum(rss_bytes(pid) for pid in pids) if pids else None


def process_rss(pid: int) -> Measure:
    """A measure of one process's RSS (psutil); None once it is gone."""
    import psutil

    proc = psutil.Process(pid)

    def measure() -> int | None:
        try:
            return proc.memory_info().rss
        except psutil.Error:
            return None

    return measure


def cluster_processes():
    """Every process the local Ray cluster of this driver runs (its descendants)."""
    import psutil

    return psutil.Process(os.getpid()).children(recursive=True)


def memory_of(processes) -> tuple[int, int, dict[str, int]]:
    """(RSS sum, PSS sum, {name: RSS}) of live processes."""
    import psutil

    rss = pss = 0
    by_name: dict[str, int] = {}
    for proc in processes:
        try:
            info = proc.memory_full_info()
            name = _name(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        by_name[name] = by_name.get(name, 0) + info.rss
    return rss, pss, by_name


def _name(proc) -> str:
    cmd = proc.cmdline()
    if cmd and cmd[0].startswith("ray::"):
        return cmd[0]
    return os.path.basename(cmd[0]) if cmd else proc.name()
