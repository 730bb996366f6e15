"""`/healthz` and `/readyz` of the running app over Serve's HTTP proxy, its database on a real PostgreSQL
server that is stopped and started again: /readyz turns 503 naming the database, then 200 again.

The app reads its database URL from an environment variable (`storage.database_url_env`), as a deployment
that keeps the password out of its Serve config does.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from service_users import create_users, free_port

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

APP = "vggt-it-readiness"
URL_ENV = "VGGT_IT_READINESS_DATABASE_URL"
GOAL_S = 5.0  # /readyz follows the database within this long, both ways
POLL_S = 0.25


@pytest.fixture(scope="module")
def own_postgres():
    """A PostgreSQL server of this module alone: stopping it must not disturb other tests."""
    from devkit.postgres_server import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL server programs not found (Debian's postgresql package, or PG_BIN)")
    pytest.importorskip("psycopg")
    server = PostgresServer(bin_dir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ready_app(ray_cluster, own_postgres, tmp_path_factory):
    """The app's URL on Serve's HTTP proxy (under its own route prefix)."""
    from ray import serve

    from serve_app.app import build_app

    tmp = tmp_path_factory.mktemp("readiness")
    (tmp / "spool").mkdir()
    url = own_postgres.new_database_url()
    create_users(url)
    args = {
        "model": {"preset": "tiny", "device": "cpu"},
        "storage": {"database_url_env": URL_ENV, "storage_root": str(tmp / "store")},
        "proxy": {"host": "127.0.0.1", "port": free_port(), "spool_dir": str(tmp / "spool")},
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(URL_ENV, url)  # read here, where the settings are built; replicas get the URL with them
        app = build_app(args)
    serve.run(app, name=APP, route_prefix=f"/{APP}", blocking=False)
    try:
        yield f"http://127.0.0.1:{ray_cluster}/{APP}"
    finally:
        serve.delete(APP)


def get(url: str) -> tuple[int, dict]:
    """(status, JSON body); a body that is not JSON (the route not there yet) comes back as {"text": ...}."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, {"text": raw[:200].decode(errors="replace")}


def wait_for_status(url: str, status: int, within_s: float) -> tuple[float, dict]:
    """Poll `url` until it answers `status`; (seconds it took, the body)."""
    start = time.monotonic()
    while True:
        code, body = get(url)
        print(f"{time.monotonic() - start:6.2f} s: {code} {json.dumps(body)}")  # shown when the test fails
        if code == status:
            return time.monotonic() - start, body
        if time.monotonic() - start > within_s:
            raise AssertionError(f"{url} still answers {code} after {within_s:.0f} s: {body}")
        time.sleep(POLL_S)  # the probe interval of a load balancer, not a synchronisation


def test_readyz_follows_the_database_going_away_and_coming_back(ready_app, own_postgres):
    _, body = wait_for_status(f"{ready_app}/readyz", 200, within_s=300)  # the replicas may still be starting
    assert body["ready"] is True
    assert set(body["checks"]) == {"tcp_listener", "model", "database", "storage_root"}
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["database"]["detail"] == "postgresql answers"

    own_postgres.halt()
    try:
        down_s, body = wait_for_status(f"{ready_app}/readyz", 503, within_s=60)
        print(f"/readyz turned 503 {down_s:.2f} s after the database stopped")
        assert body["ready"] is False and body["failing"] == ["database"], body
        assert body["checks"]["tcp_listener"]["ok"] and body["checks"]["storage_root"]["ok"]
        assert get(f"{ready_app}/healthz") == (200, {"ok": True})  # alive, only not ready
    finally:
        own_postgres.resume()
    up_s, body = wait_for_status(f"{ready_app}/readyz", 200, within_s=60)
    print(f"/readyz turned 200 {up_s:.2f} s after the database came back")
    assert body["ready"] is True
    assert down_s <= GOAL_S and up_s <= GOAL_S
