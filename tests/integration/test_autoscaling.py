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

import pytest
from config_apps import app_args, config_app, wait_until
from config_apps import running_replicas as running_replicas_of
from service_users import PASSWORD
from wire_client import Conn

from devkit.autoscale_bench import BURST_AUTOSCALING, INFERENCE_CPUS

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

APP = "vggt-it-autoscale"
INFERENCE = "VGGTInference"
UPLOADERS = 6
SCALE_S = 240  # the most a scale-up or scale-down may take on a loaded 2-core machine


def running_replicas(deployment: str = INFERENCE) -> int:
    return running_replicas_of(APP, deployment)


@pytest.fixture(scope="module")
def autoscaled(ray_cluster, tmp_path_factory):
    """(TCP port, TCPIngress handle) of the app with VGGTInference autoscaling 1-2."""
    from ray import serve

    args = app_args(tmp_path_factory.mktemp("autoscale"))
    inference = {
        "name": INFERENCE,
        "autoscaling_config": BURST_AUTOSCALING,
        "ray_actor_options": {"num_cpus": INFERENCE_CPUS},
    }
    with config_app(APP, args, [inference]):
        yield args["proxy"]["port"], serve.get_deployment_handle("TCPIngress", APP)


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
