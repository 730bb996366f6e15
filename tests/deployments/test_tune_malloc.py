"""`tune_malloc`: after it, a big block freed does not make glibc serve the next big blocks from the heap."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
import numpy as np
from serve_app.config import AppSettings
from serve_app.deployments import STAGE_DEPLOYMENT_CLASSES, StageDeployment
from serve_app.deployments.stage_deployment import tune_malloc

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

class NoStage:
    def __init__(self, settings): pass

how = sys.argv[1]  # "plain", "tuned", or a stage deployment's class name (started as its replica starts)
tuned = tune_malloc() if how == "tuned" else None
if how not in ("plain", "tuned"):
    deployment = {cls.__name__: cls for cls in STAGE_DEPLOYMENT_CLASSES.values()}[how]
    probe = type("Probe", (deployment,), {"stage_class": NoStage})  # the deployment's class, no model
    StageDeployment.__init__(probe.__new__(probe), AppSettings())  # what every stage replica runs as it starts
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
big = np.ones(16 << 20, np.uint8)  # a 16 MiB block (under glibc's 32 MiB cap), mapped on its own...
del big  # ...and freed: glibc now raises its mapping threshold, unless tuned
before = libc.mallinfo2().hblks
block = np.ones(4 << 20, np.uint8)  # a request's few MiB
print(tuned, libc.mallinfo2().hblks - before)
"""


def mapped_blocks_added(how: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", PROBE, how], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_few_mib_block_gets_its_own_mapping_after_a_bigger_one_was_freed():
    assert mapped_blocks_added("plain") == ["None", "0"]  # glibc's default: from the heap, its holes kept
    assert mapped_blocks_added("tuned") == ["True", "1"]  # tuned: its own mapping, given back when freed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
@pytest.mark.parametrize("deployment", ["FrameExtractor", "VGGTInference", "GlbExporter"])
def test_every_stage_replica_tunes_malloc_as_it_starts(deployment):
    """The inference replica too: its CPU forward pass pays for it (`scripts/bench_malloc.py`), and untuned
    its memory swung by ~240 MiB between minutes of a soak, judged growing (docs/BENCHMARKS.md)."""
    assert mapped_blocks_added(deployment)[-1] == "1"  # the 4 MiB block got its own mapping
