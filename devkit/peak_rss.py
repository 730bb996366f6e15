"""How much a piece of code raises the peak resident memory of a process (Linux, /proc/self/status).

Pillow holds decoded pixels in its own C allocations, which `tracemalloc`
does not see, so the resident set is measured instead: the kernel's peak
(VmHWM) is reset to the current resident set, the code runs, and the peak's
rise above the resident set before is the figure. `PeakRss` measures in this
process; `peak_growth` runs `work` in a new interpreter after `setup`.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_REPORT = "PEAK_GROWTH"


def available() -> bool:
    return sys.platform.startswith("linux") and os.path.exists("/proc/self/status")


def status_kib(field: str) -> int | None:
    """A kB figure of /proc/self/status (VmRSS, VmHWM), None when unreadable."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Restart the peak (VmHWM) from the current resident set; False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


def malloc_trim() -> None:
    """Hand freed heap memory back to the OS so the next run's rise is not hidden by reuse."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakRss:
    """Peak resident memory of this process over one run: `start()`, the run, `stop()`.

    `exact` turns False once the peak could not be reset: the peak is then the process-lifetime peak.
    """

    def __init__(self, trim: bool = True) -> None:
        self.trim = trim
        self.exact = True
        self.base = 0

    def start(self) -> None:
        if self.trim:
            malloc_trim()
        self.exact = reset_peak() and self.exact
        self.base = (status_kib("VmRSS") or 0) * 1024

    def stop(self) -> tuple[int, int]:
        """(peak bytes of the process, rise above the resident size at start)."""
        peak = (status_kib("VmHWM") or 0) * 1024
        return peak, max(peak - self.base, 0)


_MEASURE = """
from devkit.peak_rss import PeakRss as _PeakRss
_meter = _PeakRss(trim=False)
_meter.start()
{work}
print("{report}", _meter.stop()[1])
"""


class MeasuredCodeFailed(RuntimeError):
    """The measured process exited with an error; `stderr` holds what it printed there."""

    def __init__(self, stderr: str):
        super().__init__(f"the measured code failed:\n{stderr}")
        self.stderr = stderr


def measure_in_process(setup: str, work: str, timeout: float = 120.0) -> tuple[int, list[str]]:
    """(bytes by which `work` raised the peak resident set of a process that ran `setup` first,
    the other lines it printed)."""
    script = setup + "\n" + _MEASURE.format(work=work, report=_REPORT)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise MeasuredCodeFailed(done.stderr)
    lines = done.stdout.splitlines()
    growth = next(int(line.split()[1]) for line in lines if line.startswith(_REPORT + " "))
    return growth, [line for line in lines if not line.startswith(_REPORT + " ")]


def peak_growth(setup: str, work: str, timeout: float = 120.0) -> int:
    """Bytes by which `work` raised the peak resident set of a process that ran `setup` first."""
    return measure_in_process(setup, work, timeout)[0]
