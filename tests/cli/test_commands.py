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
    "vggt-results": "List, delete and expire stored results",
    "vggt-proxy": "Run the TCP proxy on its own",
}


@pytest.mark.parametrize(("command", "description"), sorted(COMMANDS.items()))
def test_each_command_runs_its_tool(command, description):
    path = Path(sys.executable).with_name(command)
    done = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {command} ") and description in " ".join(done.stdout.split())


def bad_database_url(tmp_path):
    return ["--database-url", f"sqlite:///{tmp_path / 'no' / 'such' / 'folder' / 'app.db'}"]


@pytest.mark.parametrize(
    ("main", "command", "argv"),
    [
        ("users_main", "vggt-users", lambda t: [*bad_database_url(t), "list"]),
        ("users_main", "vggt-users", lambda t: ["frobnicate"]),
        ("create_user_main", "vggt-create-user", lambda t: ["bob", "pw", "maybe"]),
        ("check_storage", "vggt-check-storage", lambda t: ["--min-age-s", "soon"]),
        ("check_storage", "vggt-check-storage", lambda t: [*bad_database_url(t), "--storage-root", str(t)]),
    ],
)
def test_errors_are_one_line_naming_the_command(tmp_path, capsys, main, command, argv):
    from serve_app.cli import check_storage
    from serve_app.storage import admin

    run = check_storage.main if main == "check_storage" else getattr(admin, main)
    assert run(argv(tmp_path)) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{command}: ") and "usage" not in lines[0], captured.err
    assert not (tmp_path / "no").exists()
