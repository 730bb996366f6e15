"""The service split over two Ray nodes: scripts/multinode_check.py, run as it is run by hand.

The script starts its own two-node cluster in subprocesses (its own GCS port,
temp dirs and token), so it coexists with the suite's in-process cluster; see
its docstring for what it checks. It needs root (node B gets a private /tmp
through `unshare --mount`) and the PostgreSQL server programs; it reports a
skip (exit status 77) where they are missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "multinode_check.py"
SKIPPED = 77
SCRIPT_TIMEOUT_S = 540  # the script bounds each of its steps; this bounds the whole


def test_ingress_on_one_node_and_the_stages_on_another_answer_end_to_end():
    # The script drops RAY_ADDRESS and the token variables of this process (the suite's cluster).
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_S)
    output = done.stdout + done.stderr
    if done.returncode == SKIPPED:
        pytest.skip(output.strip().splitlines()[-1])
    assert done.returncode == 0, output[-6000:]
    assert "PASS:" in done.stdout
