"""The running app with a stored-results quota: ERROR_QUOTA_EXCEEDED over the wire, room again after a deletion.

`quota_service` (module scope) deploys the app (tiny untrained model on CPU)
with `storage.max_results_per_user: 1` and its own SQLite database and
storage root, and deletes it when the module is done, as `postgres_service`
does, so at most two apps share the cluster's CPUs.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from service_users import PASSWORD, create_users, free_port
from wire_client import Conn, fresh_address

from serve_app.storage import Database
from serve_app.storage.blob_root import LocalRoot
from serve_app.storage.lifecycle import ResultLifecycle

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

APP = "vggt-it-quota"


@pytest.fixture(scope="module")
def quota_service(ray_cluster, tmp_path_factory):
    from ray import serve

    from serve_app.app import build_app

    tmp = tmp_path_factory.mktemp("quota")
    (tmp / "spool").mkdir()
    storage = {
        "database_url": f"sqlite:///{tmp / 'service.db'}",
        "storage_root": str(tmp / "store"),
        "max_results_per_user": 1,
    }
    args = {
        "model": {"preset": "tiny", "device": "cpu"},
        "storage": storage,
        "frames": {"max_frames": 4},
        "proxy": {"host": "127.0.0.1", "port": free_port(), "spool_dir": str(tmp / "spool")},
    }
    create_users(storage["database_url"])
    serve.run(build_app(args), name=APP, route_prefix=None, blocking=False)
    handle = serve.get_deployment_handle("TCPIngress", APP)
    deadline = time.monotonic() + 300
    while True:  # the port is the ingress's, once it runs
        try:
            port = handle.get_port.remote().result(timeout_s=60)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    try:
        yield port, storage
    finally:
        serve.delete(APP)


def test_the_quota_refuses_over_the_wire_and_a_deleted_result_makes_room(quota_service, jpegs):
    port, storage = quota_service
    with Conn(port, source=fresh_address()) as c:
        assert c.login("alice", PASSWORD)[0] is True
        first = c.images(jpegs[:2])
        assert first.error is None, first.data[:100]
        refused = c.images(jpegs[1:])
        assert refused.error == "ERROR_QUOTA_EXCEEDED"

        db = Database(storage["database_url"])
        try:  # what `vggt-results delete` does
            ResultLifecycle(db, LocalRoot(Path(storage["storage_root"]))).delete([first.name])
        finally:
            db.dispose()
        assert c.get_glb(first.name) == b"ERROR_HASH_NOT_FOUND"
        second = c.images(jpegs[1:])
        assert second.error is None and second.data[:4] == b"glTF"
