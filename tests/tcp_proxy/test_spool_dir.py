"""Spool folders: one per server, deleted at close; those of dead processes swept at start."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from proxy_fakes import FakeBackend

from tcp_proxy.server import start_server
from tcp_proxy.settings import ProxySettings
from tcp_proxy.spool_dir import abandoned_spool_dirs


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_servers_uploads_are_swept_and_live_ones_kept(tmp_path):
    left = tmp_path / f"vggt-spool-{dead_pid()}-abc"
    left.mkdir()
    (left / "upload-1.video").write_bytes(b"x" * 1000)  # a process killed mid-upload
    live = tmp_path / f"vggt-spool-{os.getppid()}-def"  # another server's, still running
    live.mkdir()
    (live / "upload-2.video").write_bytes(b"y")
    unrelated = tmp_path / "something-else"
    unrelated.mkdir()
    assert abandoned_spool_dirs(str(tmp_path)) == [left]

    async def scenario():
        server = await start_server(ProxySettings(host="127.0.0.1", port=0, spool_dir=str(tmp_path)), FakeBackend(), max_images=5)
        own = server.spool_dir
        assert own.parent == tmp_path and own.is_dir()
        assert not left.exists() and live.exists() and unrelated.exists()
        await server.close()
        assert not own.exists()

    asyncio.run(scenario())
