"""`vggt-fetch-weights` against a local fake of the Hugging Face hub (HF_ENDPOINT): no network.

The fake answers the hub's file route, `/<repo id>/resolve/<revision>/<file>`, as the hub does (HEAD with
the commit and ETag headers, then GET), and records what was asked, so the tests see which repository and
revision the command fetched.
"""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from serve_app.cli import fetch_weights

COMMAND = Path(sys.executable).with_name("vggt-fetch-weights")
REPO = "someone/VGGT-1B-Commercial"
REVISION = "0123456789abcdef0123456789abcdef01234567"
CONTENT = b"weights of the fake hub"


class FakeHub:
    """An HTTP server serving `files` ({"<repo>/<revision>/<name>": bytes}) under the hub's resolve route."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.asked: list[tuple[str, str]] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                hub.asked.append((self.command, self.path))
                repo, sep, rest = self.path.lstrip("/").partition("/resolve/")
                data = hub.files.get(f"{repo}/{rest}") if sep else None
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", REVISION)
                self.send_header("ETag", f'"{len(data)}-fake"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def hub_env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and not k.startswith("HF_")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1")
    return env


def test_the_installed_command_fetches_the_named_repo_at_the_pinned_revision_outside_a_checkout(tmp_path):
    """Run from a folder outside the checkout; the fake's 23-byte file then fails the size check."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    with FakeHub({f"{REPO}/{REVISION}/model.pt": CONTENT}) as hub:
        done = subprocess.run(
            [str(COMMAND), "--repo-id", REPO, "--revision", REVISION],
            cwd=work, env=hub_env(tmp_path, hub.endpoint), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert f"licence: the weights of {REPO} are Meta's, under the licence on {hub.endpoint}/{REPO}" in done.stdout
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("vggt-fetch-weights: ")
    assert "23 bytes" in done.stderr and "truncated" in done.stderr
    assert ("GET", f"/{REPO}/resolve/{REVISION}/model.pt") in hub.asked
    assert list(work.iterdir()) == []  # default --out is ./model.pt of the working folder; nothing left there


def test_a_missing_revision_is_refused_in_one_line(tmp_path):
    with FakeHub({}) as hub:
        done = subprocess.run(
            [str(COMMAND), "--revision", "nosuchcommit", "--out", str(tmp_path / "model.pt")],
            env=hub_env(tmp_path, hub.endpoint), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "facebook/VGGT-1B/model.pt at revision nosuchcommit" in lines[0], done.stderr
    assert "facebook/VGGT-1B-Commercial" in done.stdout  # the default repository points to the commercial one
    assert not (tmp_path / "model.pt").exists()


def test_a_verified_download_lands_at_out(tmp_path, monkeypatch, capsys):
    """In process, with the checks of the real 5 GB file replaced: the file the hub served is moved into place."""
    from huggingface_hub import constants

    with FakeHub({f"{REPO}/{REVISION}/model.pt": CONTENT}) as hub:
        monkeypatch.setattr(constants, "ENDPOINT", hub.endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.endpoint + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(fetch_weights, "verify", lambda path: f"{path}: accepted")
        out = tmp_path / "weights" / "model.pt"
        code = fetch_weights.main(["--out", str(out), "--repo-id", REPO, "--revision", REVISION])
    assert code == 0
    assert out.read_bytes() == CONTENT
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.pt"]  # the staging folder is gone
    assert f"saved {out} ({REPO} at revision {REVISION})" in capsys.readouterr().out


def test_the_command_module_needs_no_checkout(tmp_path):
    """Importing it pulls in nothing from the checkout's devkit/ (absent from an installed package)."""
    code = "import sys, serve_app.cli.fetch_weights; print(sorted(m for m in sys.modules if m.split('.')[0] == 'devkit'))"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(("argv", "default_out"), [([], None), ([], Path("/srv/ckpt/model.pt"))])
def test_the_default_destination(argv, default_out):
    args = fetch_weights.build_parser(default_out).parse_args(argv)
    assert args.out == (default_out or Path("model.pt"))
    assert (args.repo_id, args.revision) == ("facebook/VGGT-1B", None)
