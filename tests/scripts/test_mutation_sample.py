"""scripts/mutation.sh --sample: a fixed sample of mutants of the critical modules, each killed by the module's
own tests. A surviving mutant means a test stopped asserting what it did (docs/TESTING.md, Mutation testing)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MUTMUT = Path(sys.executable).with_name("mutmut")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="mutmut forks its test runs"),
    pytest.mark.skipif(not MUTMUT.exists(), reason="mutmut is not installed (pip install -e '.[test]')"),
]


def test_every_sampled_mutant_is_killed(tmp_path):
    env = dict(os.environ, MUTATION_WORKDIR=str(tmp_path / "mutation"))
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "mutation.sh"), "--sample"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    print(result.stdout, result.stderr)
    assert result.returncode == 0, f"a sampled mutant survived or mutmut failed:\n{result.stdout}\n{result.stderr}"
    scores = [line for line in result.stdout.splitlines() if ": killed " in line]
    assert len(scores) >= 2, result.stdout
    shutil.rmtree(tmp_path / "mutation", ignore_errors=True)
