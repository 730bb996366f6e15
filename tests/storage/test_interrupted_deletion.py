"""A deletion killed between its row and its file leaves storage that `vggt-check-storage` calls consistent.

The deletion runs as the real `vggt-results delete` in a subprocess against a
bucket on the test S3 server, reached through a small TCP relay of this test.
The relay passes every request on until the subprocess sends the object's
DELETE, the first request of the deletion's second step (the row is
committed by then); it holds that request, and the test kills the process
with SIGKILL while it waits for the answer. Nothing of the service is
replaced: the pause is on the wire.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading

import pytest
import yaml
from sqlalchemy import select

from serve_app.storage import GlbStore
from serve_app.storage.blob_root import open_root
from serve_app.storage.models import GlbDeletion
from tcp_proxy.errors import HashNotFoundError

WAIT_S = 60  # generous: the subprocess imports the service first


class DeleteHoldingRelay:
    """TCP relay to `target` that holds (never forwards) the first request starting with `DELETE `."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.held = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target_port))
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if from_client and chunk.startswith(b"DELETE ") and not self.held.is_set():
                    self.held.set()
                    return  # the request never reaches the server, and no answer comes
                sink.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        for sock in self._sockets:
            sock.close()


def write_config(path, database_url: str, bucket_url: str, endpoint_url: str) -> str:
    storage = {"database_url": database_url, "storage_root": bucket_url, "s3_endpoint_url": endpoint_url}
    path.write_text(yaml.safe_dump({"storage": storage}), encoding="utf-8")
    return str(path)


def tool(module: str, *argv: str) -> list[str]:
    return [sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())", *argv]


def run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=WAIT_S * 2)


def test_a_deletion_killed_between_row_and_file_leaves_consistent_storage(tmp_path, db, database_url, users, s3_server):
    bucket_url = s3_server.new_bucket_url()
    root = open_root(bucket_url, endpoint_url=s3_server.endpoint_url)
    store = GlbStore(db, root)
    saved = store.save(b"glTF doomed", users.create("owner", "pw").id, "a.jpg")
    kept = store.save(b"glTF kept", users.create("other", "pw").id, "b.jpg")
    relay = DeleteHoldingRelay(int(s3_server.endpoint_url.rsplit(":", 1)[1]))
    relayed = write_config(tmp_path / "relayed.yaml", database_url, bucket_url, f"http://127.0.0.1:{relay.port}")
    direct = write_config(tmp_path / "direct.yaml", database_url, bucket_url, s3_server.endpoint_url)
    (tmp_path / "spool").mkdir()
    checker_options = ["--config", direct, "--min-age-s", "0", "--spool-dir", str(tmp_path / "spool")]

    deleting = subprocess.Popen(
        tool("serve_app.storage.results_admin", "--config", relayed, "delete", saved.hashed_name)
    )
    try:
        assert relay.held.wait(WAIT_S), "the deletion never sent the object's DELETE"
        assert deleting.poll() is None
        deleting.send_signal(signal.SIGKILL)
        assert deleting.wait(WAIT_S) == -signal.SIGKILL
    finally:
        if deleting.poll() is None:
            deleting.kill()
        relay.close()

    # interrupted: the row is gone (the link is unknown, not broken), the file is there and queued
    with pytest.raises(HashNotFoundError):
        store.open(saved.hashed_name)
    assert root.is_file(saved.key)
    with db.session() as session:
        assert list(session.scalars(select(GlbDeletion.file_key))) == [saved.key]

    check = run(tool("serve_app.cli.check_storage", *checker_options))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "storage is consistent" in check.stdout and "file without row" not in check.stdout
    assert f"file awaiting deletion (its row is deleted): {bucket_url}/{saved.key}" in check.stdout

    sweep = run(tool("serve_app.storage.results_admin", "--config", direct, "expire", "--older-than-days", "30"))
    assert sweep.returncode == 0, sweep.stderr
    assert not root.is_file(saved.key) and store.read(kept.hashed_name) == b"glTF kept"
    with db.session() as session:
        assert session.scalar(select(GlbDeletion.file_key)) is None
    check = run(tool("serve_app.cli.check_storage", *checker_options))
    assert check.returncode == 0 and "awaiting deletion" not in check.stdout, check.stdout + check.stderr
