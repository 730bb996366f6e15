"""Settings loading of the standalone proxy (`vggt-proxy`, `python -m serve_app.standalone_proxy`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from serve_app.cli import InputError
from serve_app.standalone_proxy import load_settings, main, parse_args


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
