"""VGGTInference autoscaling on the running app: a burst of uploaders adds a replica, the ingress's admission
counts it, nothing is dropped, and the count goes back to one after the burst.

The app (tiny untrained model on CPU, its own name, port and database) is
deployed from a Serve config as `serve deploy` does it: the builder's
application with the config's `deployments:` entry laid over it by Serve.
That entry gives VGGTInference `autoscaling_config` min 1 / max 2 with short
delays and 0.5 CPU, as `scripts/bench_load.py --autoscale` does, so that two
replicas fit beside another app on the cluster's 4 logical CPUs. The app is deleted when the module is done.
"""

from __future__ import annotations

import threading
import time

import pytest
from service_users import PASSWORD, create_users, free_port
from wire_client import Conn

from devkit.autoscale_bench import BURST_AUTOSCALING, INFERENCE_CPUS

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

APP = "vggt-it-autoscale"
INFERENCE = "VGGTInference"
UPLOADERS = 6
SCALE_S = 240  # the most a scale-up or scale-down may take on a loaded 2-core machine


def running_replicas(deployment: str = INFERENCE) -> int:
    from ray import serve
    from ray.serve._private.common import ReplicaState

    return serve.status().applications[APP].deployments[deployment].replica_states.get(ReplicaState.RUNNING, 0)


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(1)


@pytest.fixture(scope="module")
def autoscaled(ray_cluster, tmp_path_factory):
    """(TCP port, TCPIngress handle) of the app with VGGTInference autoscaling 1-2."""
    from ray import serve
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    tmp = tmp_path_factory.mktemp("autoscale")
    (tmp / "spool").mkdir()
    args = {
        "model": {"preset": "tiny", "device": "cpu"},
        "storage": {"database_url": f"sqlite:///{tmp / 'service.db'}", "storage_root": str(tmp / "store")},
        "frames": {"max_frames": 4},
        "proxy": {"host": "127.0.0.1", "port": free_port(), "spool_dir": str(tmp / "spool")},
    }
    create_users(args["storage"]["database_url"])
    inference = {
        "name": INFERENCE,
        "autoscaling_config": BURST_AUTOSCALING,
        "ray_actor_options": {"num_cpus": INFERENCE_CPUS},
    }
    application = {
        "name": APP,
        "import_path": "serve_app.app:build_app",
        "route_prefix": f"/{APP}",
        "args": args,
        "deployments": [inference],
    }
    _get_global_client().deploy_apps(ServeDeploySchema(applications=[application]))
    try:
        wait_until(_answers, 300, "the app is built and its TCP ingress answers")
        yield args["proxy"]["port"], serve.get_deployment_handle("TCPIngress", APP)
    finally:
        serve.delete(APP)


def _answers() -> bool:
    from ray import serve

    try:  # the controller builds the app in a task of its own: the deployment exists only then
        serve.get_deployment_handle("TCPIngress", APP).get_port.remote().result(timeout_s=30)
    except Exception:  # noqa: BLE001 - not answering yet, whatever the reason
        return False
    return True


def ingress_counts(handle, replicas: int) -> bool:
    """Whether the ingress's admission divides its wait by `replicas` now."""
    return handle.status.remote().result(timeout_s=30)["inference_replicas"] == replicas


def test_a_burst_of_six_uploaders_scales_to_two_replicas_drops_none_and_scales_back(autoscaled, jpegs):
    port, handle = autoscaled
    wait_until(lambda: running_replicas() == 1, SCALE_S, "the first VGGTInference replica RUNNING")  # min_replicas
    burst_over = threading.Event()
    replies: list[tuple[int, str | None]] = []
    failures: list[tuple[int, str]] = []

    def uploader(i: int) -> None:
        try:
            with Conn(port, timeout=300) as c:
                assert c.login(("alice", "vip", "carol")[i % 3], PASSWORD)[0] is True
                n = 0
                while n == 0 or not burst_over.is_set():  # at least one each, then until two replicas ran
                    reply = c.images([jpegs[i % 3] + f"uploader {i} request {n}".encode(), jpegs[(i + 1) % 3]])
                    replies.append((i, reply.error))
                    n += 1
        except BaseException as exc:  # noqa: BLE001 - a dropped request: reported below
            failures.append((i, repr(exc)))

    threads = [threading.Thread(target=uploader, args=(i,), daemon=True) for i in range(UPLOADERS)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: running_replicas() == 2, SCALE_S, "a second VGGTInference replica RUNNING")
        wait_until(lambda: ingress_counts(handle, 2), 60, "the ingress's admission counts two replicas")
    finally:
        burst_over.set()
        for t in threads:
            t.join(300)
    assert not failures, failures  # 0 dropped
    assert len(replies) >= UPLOADERS and all(error is None for _, error in replies), replies
    wait_until(lambda: running_replicas() == 1, SCALE_S, "back to one VGGTInference replica after the burst")
    wait_until(lambda: ingress_counts(handle, 1), 60, "the ingress's admission counts one replica again")
