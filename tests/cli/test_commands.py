"""The console commands the install puts next to Python each start their tool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

COMMANDS = {
    "vggt-client": "Reconstruction service client",
    "vggt-export": "Photos or a video to a VGGT point cloud",
    "vggt-users": "Manage users",
    "vggt-create-user": "Create a user",
    "vggt-check-storage": "rows without files",
    "vggt-proxy": "Run the TCP proxy on its own",
}


@pytest.mark.parametrize(("command", "description"), sorted(COMMANDS.items()))
def test_each_command_runs_its_tool(command, description):
    path = Path(sys.executable).with_name(command)
    done = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and description in " ".join(done.stdout.split())
