"""Apps deployed from a Serve config, as `serve deploy` does it, for integration tests that need other
replica counts than the session's service: the builder's application with a `deployments:` section laid over
it by Serve. A fresh database with the test users, its own TCP port and spool folder."""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from service_users import create_users, free_port


def wait_until(condition, timeout_s: float, what: str) -> None:
    """Poll `condition` every second until it holds; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(1)


def running_replicas(app: str, deployment: str) -> int:
    """The RUNNING replicas of `deployment` of `app` in Serve's view (0 before it exists)."""
    from ray import serve
    from ray.serve._private.common import ReplicaState

    application = serve.status().applications.get(app)
    if application is None or deployment not in application.deployments:
        return 0
    return application.deployments[deployment].replica_states.get(ReplicaState.RUNNING, 0)


def app_args(tmp: Path) -> dict[str, Any]:
    """The app's args: tiny untrained model on CPU, SQLite and storage under `tmp`, a free TCP port."""
    (tmp / "spool").mkdir(exist_ok=True)
    return {
        "model": {"preset": "tiny", "device": "cpu"},
        "storage": {"database_url": f"sqlite:///{tmp / 'service.db'}", "storage_root": str(tmp / "store")},
        "frames": {"max_frames": 4},
        "proxy": {"host": "127.0.0.1", "port": free_port(), "spool_dir": str(tmp / "spool")},
    }


@contextmanager
def config_app(app: str, args: dict[str, Any], deployments: list[dict[str, Any]]) -> Iterator[None]:
    """The app `app` deployed with `deployments` laid over the builder's options, until the block ends
    (then deleted); the block starts once its TCP ingress answers."""
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    create_users(args["storage"]["database_url"])
    application = {
        "name": app,
        "import_path": "serve_app.app:build_app",
        "route_prefix": f"/{app}",
        "args": args,
        "deployments": deployments,
    }
    _get_global_client().deploy_apps(ServeDeploySchema(applications=[application]))
    try:
        wait_until(lambda: _answers(app), 300, "the app is built and its TCP ingress answers")
        yield
    finally:
        serve.delete(app)


def _answers(app: str) -> bool:
    from ray import serve

    try:  # the controller builds the app in a task of its own: the deployment exists only then
        serve.get_deployment_handle("TCPIngress", app).get_port.remote().result(timeout_s=30)
    except Exception:  # noqa: BLE001 - not answering yet, whatever the reason
        return False
    return True
