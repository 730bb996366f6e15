"""tcp_proxy.client (library and CLI) against the real TCP server with an in-memory backend."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from pathlib import Path

import proxy_fakes as fakes
import pytest

from tcp_proxy import client as client_mod
from tcp_proxy.client import Client, ServerError
from tcp_proxy.server import start_server
from tcp_proxy.settings import ProxySettings

ROOT = Path(__file__).resolve().parents[2]


class ServerThread:
    """The proxy on its own event loop in a thread, so blocking clients can call it."""

    def __init__(self, **overrides):
        self.backend = fakes.FakeBackend()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        settings = ProxySettings(host="127.0.0.1", port=0, **overrides)
        self.server = self._call(start_server(settings, self.backend, max_images=5, port=0))
        self.port = self.server.port

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def stop(self):
        self._call(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def server(tmp_path):
    s = ServerThread(spool_dir=str(tmp_path), max_payload_bytes=2_000_000)
    yield s
    s.stop()


@pytest.fixture
def files(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.jpg").write_bytes(b"\xff\xd8first")
    (d / "b.png").write_bytes(b"\x89PNGsecond")
    (d / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" * 50_000)
    return d


def test_login_images_get_on_one_connection(server, files):
    with Client("127.0.0.1", server.port) as c:
        assert c.login("demo", "123456") == (True, False)
        name, glb = c.images([files / "a.jpg", files / "b.png"])
        assert name.endswith(".glb") and len(name) == 68
        assert c.get(name) == glb
        with pytest.raises(ServerError) as info:
            c.get("f" * 64)
        assert info.value.code == "ERROR_HASH_NOT_FOUND"


def test_failed_login_and_not_logged_in(server, files):
    with Client("127.0.0.1", server.port) as c:
        assert c.login("demo", "nope") == (False, False)
    with Client("127.0.0.1", server.port) as c:
        with pytest.raises(ServerError) as info:
            c.images([b"x"])
        assert info.value.code == "ERROR_NOT_LOGGED_IN"


def test_video_needs_vip(server, files):
    with Client("127.0.0.1", server.port) as c:
        c.login("demo", "123456")
        with pytest.raises(ServerError) as info:
            c.video(files / "clip.mp4")
        assert info.value.code == "ERROR_VIP_REQUIRED"
        assert c.login("vip", "gold") == (True, True)
        name, _ = c.video(files / "clip.mp4")
        assert name.endswith(".glb")


def test_payload_too_large(server, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * 3_000_000)
    with Client("127.0.0.1", server.port) as c:
        c.login("vip", "gold")
        with pytest.raises((ServerError, ConnectionError)) as info:
            c.video(big)
        if isinstance(info.value, ServerError):
            assert info.value.code == "ERROR_PAYLOAD_TOO_LARGE"


def test_cli_images_then_get(server, files, tmp_path, capsys):
    out = tmp_path / "model.glb"
    base = ["--host", "127.0.0.1", "--port", str(server.port), "--quiet"]
    argv = base + ["--user", "demo", "--password", "123456", "images", str(files / "a.jpg"), "--out", str(out)]
    assert client_mod.main(argv) == 0
    name = capsys.readouterr().out.split()[0]
    assert out.read_bytes().startswith(b"glTF")
    again = tmp_path / "again.glb"
    assert client_mod.main(base + ["get", name[:-4], "--out", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()


def test_cli_reconnect_relies_on_address_binding(server, files, tmp_path, capsys):
    base = ["--host", "127.0.0.1", "--port", str(server.port)]
    out = tmp_path / "v.glb"
    login = ["--user", "vip", "--password", "gold", "--reconnect"]
    argv = base + login + ["video", str(files / "clip.mp4"), "--out", str(out)]
    assert client_mod.main(argv) == 0
    assert out.exists()
    assert client_mod.main(base + ["--user", "demo", "--password", "bad", "login"]) == 1
    assert capsys.readouterr().out.strip().endswith("[false, false]")
    assert client_mod.main(base + ["get", "not-a-hash"]) == 1
    assert "ERROR_INVALID_HASH" in capsys.readouterr().err


def test_cli_list_and_library_list(server, files, tmp_path, capsys):
    base = ["--host", "127.0.0.1", "--port", str(server.port), "--quiet"]
    login = ["--user", "demo", "--password", "123456"]
    assert client_mod.main(base + ["list"]) == 1  # a fresh server: no login from here yet
    assert "ERROR_NOT_LOGGED_IN" in capsys.readouterr().err
    for image in ("a.jpg", "b.png"):
        assert client_mod.main(base + login + ["images", str(files / image), "--out", str(tmp_path / "x.glb")]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines() if " -> " in line]
    assert client_mod.main(base + login + ["list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == names[::-1]  # newest first
    assert client_mod.main(base + login + ["--reconnect", "list"]) == 0  # LIST stays on the login's connection
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == names[::-1]
    assert client_mod.main(base + ["list"]) == 1  # the address's binding does not count for LIST
    assert "ERROR_NOT_LOGGED_IN" in capsys.readouterr().err
    with Client("127.0.0.1", server.port) as c:
        assert c.login("vip", "gold") == (True, True)
        assert c.list() == []


def test_cli_checks_local_inputs_before_connecting(files, tmp_path, capsys):
    unused = ["--host", "127.0.0.1", "--port", "1", "--user", "demo", "--password", "x"]  # nothing listens on 1
    assert client_mod.main(unused + ["images", str(files / "missing.jpg")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert client_mod.main(unused + ["video", str(files / "clip.mp4"), "--out", str(files / "a.jpg" / "x.glb")]) == 2
    assert "a.jpg is a file, not a folder" in capsys.readouterr().err
    assert client_mod.main(unused + ["get", "ab" * 32, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_cli_prints_the_hash_even_when_the_file_cannot_be_written(server, files, tmp_path, capsys, monkeypatch):
    base = ["--host", "127.0.0.1", "--port", str(server.port), "--quiet", "--user", "demo", "--password", "123456"]
    out = tmp_path / "result.glb"
    real_write = Path.write_bytes

    def disk_full(path, data):
        if path == out:
            raise OSError(28, "No space left on device")
        return real_write(path, data)

    monkeypatch.setattr(Path, "write_bytes", disk_full)
    assert client_mod.main(base + ["images", str(files / "a.jpg"), "--out", str(out)]) == 1
    captured = capsys.readouterr()
    name = captured.out.strip()
    assert len(name) == 68 and name.endswith(".glb") and name[:-4] in server.backend.stored
    assert "cannot write" in captured.err and "No space left" in captured.err and "connection" not in captured.err


@pytest.mark.parametrize(
    "command",
    [[sys.executable, str(ROOT / "scripts" / "client.py")], [str(Path(sys.executable).with_name("vggt-client"))]],
)
def test_the_script_and_the_console_command_run_it(command, server, files, tmp_path):
    out = tmp_path / "via-command.glb"
    argv = ["--port", str(server.port), "--quiet", "--user", "demo", "--password", "123456"]
    done = subprocess.run(
        [*command, *argv, "images", str(files / "a.jpg"), "--out", str(out)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].endswith(".glb") and out.read_bytes().startswith(b"glTF")


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert captured.out == "" and len(lines) == 1, captured
    return lines[0]


def test_cli_errors_are_one_line_naming_the_command(files, capsys):
    unused = ["--port", "1", "--user", "demo", "--password", "x"]
    assert client_mod.main(unused + ["images", str(files / "missing.jpg")]) == 2
    assert one_error_line(capsys) == f"vggt-client: cannot read {files / 'missing.jpg'}"
    assert client_mod.main(["--port", "not-a-port", "list"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("vggt-client: ") and "--port" in line and "usage" not in line
    assert client_mod.main(["login"]) == 2
    assert one_error_line(capsys) == "vggt-client: login needs --user"
    assert client_mod.build_parser().prog == "vggt-client"


def test_connection_refused_names_the_address(files, capsys):
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert client_mod.main(["--port", str(port), "--quiet", "get", "ab" * 32, "--out", str(files / "x.glb")]) == 2
    assert one_error_line(capsys) == f"vggt-client: cannot connect to 127.0.0.1:{port}: connection refused"
    assert not (files / "x.glb").exists()


def test_out_into_a_missing_folder_is_refused(files, capsys):
    out = files / "missing" / "x.glb"
    assert client_mod.main(["--port", "1", "get", "ab" * 32, "--out", str(out)]) == 2
    assert one_error_line(capsys) == f"vggt-client: --out: folder {files / 'missing'} does not exist"
    assert not (files / "missing").exists()


def test_a_folder_is_not_a_video(files, capsys):
    assert client_mod.main(["--port", "1", "--user", "vip", "--password", "gold", "video", str(files)]) == 2
    assert one_error_line(capsys) == f"vggt-client: {files} is a folder, not a video"


def test_images_of_a_folder_go_in_name_order(server, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, data in (("b.png", b"B"), ("a.jpg", b"A"), ("C.JPEG", b"C"), ("notes.txt", b"N"), ("d.bmp", b"D")):
        (folder / name).write_bytes(data)
    (folder / "e.jpg").mkdir()  # a folder named like a photo is not one
    assert [p.name for p in client_mod.folder_photos(folder)] == ["C.JPEG", "a.jpg", "b.png"]
    out = tmp_path / "folder.glb"
    argv = ["--port", str(server.port), "--quiet", "--user", "demo", "--password", "123456"]
    assert client_mod.main(argv + ["images", str(folder), "--out", str(out)]) == 0
    assert out.read_bytes() == b"glTF" + b"C|A|B"  # the fake backend's GLB: the photos joined, in order
    empty = tmp_path / "empty"
    empty.mkdir()
    capsys.readouterr()
    assert client_mod.main(argv + ["images", str(empty)]) == 2
    assert one_error_line(capsys).startswith(f"vggt-client: no photos in {empty} (accepted: .jpg, ")
