"""`tune_malloc`: after it, a big block freed does not make glibc serve the next big blocks from the heap."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
import numpy as np
from serve_app.deployments.stage_deployment import tune_malloc

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Info
tuned = tune_malloc() if sys.argv[1] == "tuned" else None
big = np.ones(16 << 20, np.uint8)  # a 16 MiB block (under glibc's 32 MiB cap), mapped on its own...
del big  # ...and freed: glibc now raises its mapping threshold, unless tuned
before = libc.mallinfo2().hblks
block = np.ones(4 << 20, np.uint8)  # a request's few MiB
print(tuned, libc.mallinfo2().hblks - before)
"""


def mapped_blocks_added(mode: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_few_mib_block_gets_its_own_mapping_after_a_bigger_one_was_freed():
    assert mapped_blocks_added("plain") == ["None", "0"]  # glibc's default: from the heap, its holes kept
    assert mapped_blocks_added("tuned") == ["True", "1"]  # tuned: its own mapping, given back when freed
