"""Settings loading of the standalone proxy (`vggt-proxy`, `python -m serve_app.standalone_proxy`)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from proxy_fakes import FakeBackend

from serve_app import standalone_proxy
from serve_app.cli import InputError
from serve_app.config import AppSettings
from serve_app.standalone_proxy import load_settings, main, open_server, parse_args
from tcp_proxy.server import start_server


def test_defaults_without_config():
    settings = load_settings(None, "vggt")
    assert settings.proxy.port == 4567 and settings.frames.max_images == 20


def test_args_of_the_named_app_in_a_serve_config(tmp_path):
    path = tmp_path / "serve.yaml"
    path.write_text(
        "applications:\n"
        "  - name: other\n    args: {proxy: {port: 1}}\n"
        "  - name: vggt\n    args:\n      proxy: {port: 5000, bind_sessions_to_ip: false}\n"
        "      frames: {max_images: 8}\n"
    )
    settings = load_settings(str(path), "vggt")
    assert settings.proxy.port == 5000 and not settings.proxy.bind_sessions_to_ip
    assert settings.frames.max_images == 8
    with pytest.raises(InputError, match="no application named 'missing'"):
        load_settings(str(path), "missing")


def test_plain_settings_file(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("proxy: {read_timeout_s: 5}\n")
    assert load_settings(str(path), "vggt").proxy.read_timeout_s == 5.0


def test_cli_options():
    args = parse_args(["--address", "ray://head:10001", "--app", "demo", "--port", "0"])
    assert (args.address, args.app, args.port, args.host) == ("ray://head:10001", "demo", 0, None)


def test_help_shows_the_command_name():
    done = subprocess.run(
        [str(Path(sys.executable).with_name("vggt-proxy")), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: vggt-proxy "), done.stdout


def test_bad_options_and_settings_are_one_line_and_exit_2(tmp_path, capsys):
    assert main(["--port", "many"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vggt-proxy: ") and "--port" in err and err.count("\n") == 1
    missing = tmp_path / "nope.yaml"
    assert main(["--config", str(missing)]) == 2
    assert capsys.readouterr().err == f"vggt-proxy: --config {missing}: No such file or directory\n"
    assert main(["--log-level", "LOUD"]) == 2
    assert capsys.readouterr().err.startswith("vggt-proxy: --log-level must be ")


def listening_like_the_ingress() -> socket.socket:
    """A socket listening on a free port of 127.0.0.1 with SO_REUSEPORT, as the application's ingress binds."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    return listener


def spool_settings(folder: Path) -> AppSettings:
    return AppSettings.from_dict({"proxy": {"spool_dir": str(folder)}})


def test_a_port_in_use_is_refused_unless_shared(tmp_path):
    settings = spool_settings(tmp_path)

    async def scenario():
        ingress = await start_server(settings.proxy, FakeBackend(), max_images=5, host="127.0.0.1", port=0)
        try:
            options = ["--host", "127.0.0.1", "--port", str(ingress.port)]
            with pytest.raises(InputError, match=rf"^port {ingress.port} on 127.0.0.1 is already in use"):
                await open_server(parse_args(options), settings, FakeBackend(), None)
            shared = await open_server(parse_args([*options, "--share-port"]), settings, FakeBackend(), None)
            assert shared.port == ingress.port and shared.serving
            await shared.close()
        finally:
            await ingress.close()

    asyncio.run(scenario())
    assert list(tmp_path.iterdir()) == []  # the refused server left no spool folder


def test_vggt_proxy_on_a_taken_port_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    closed = []

    class Accounts:  # the database side, outside this unit
        def close(self):
            closed.append(True)

    async def connect(_args, _settings):  # in place of joining a Ray cluster
        return FakeBackend(), Accounts()

    monkeypatch.setattr(standalone_proxy, "connect", connect)
    config = tmp_path / "settings.yaml"
    config.write_text(f"proxy: {{spool_dir: '{tmp_path / 'spool'}'}}\n")
    (tmp_path / "spool").mkdir()
    with listening_like_the_ingress() as listener:
        port = listener.getsockname()[1]
        assert main(["--config", str(config), "--host", "127.0.0.1", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"vggt-proxy: port {port} on 127.0.0.1 is already in use (the application's own ingress?); "
        "give another --port, or --share-port to share it\n"
    )
    assert closed == [True] and list((tmp_path / "spool").iterdir()) == []
