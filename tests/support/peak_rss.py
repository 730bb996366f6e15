"""How much a piece of code raises the peak memory of a fresh Python process.

Pillow holds decoded pixels in its own C allocations, which `tracemalloc`
does not see, so the frame tests measure the resident set instead: `work`
runs in a new interpreter after `setup`, and the growth of the process's
peak resident set (VmHWM) over its resident set before `work` is returned.
Linux only (/proc/self/status).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_MEASURE = """
def _status_kib(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # restart the peak (VmHWM) from the current resident set
except OSError:
    pass
_before = _status_kib("VmRSS")
{work}
print("PEAK_GROWTH", (_status_kib("VmHWM") - _before) * 1024)
"""


def available() -> bool:
    return sys.platform.startswith("linux") and os.path.exists("/proc/self/status")


def peak_growth(setup: str, work: str, timeout: float = 120.0) -> int:
    """Bytes by which `work` raised the peak resident set of a process that ran `setup` first."""
    script = setup + "\n" + _MEASURE.format(work=work)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests" / "support")])}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"the measured code failed:\n{done.stderr}")
    line = next(line for line in done.stdout.splitlines() if line.startswith("PEAK_GROWTH "))
    return int(line.split()[1])
