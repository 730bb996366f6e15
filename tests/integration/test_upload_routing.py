"""Browser uploads with two TCP ingress replicas: every piece reaches the replica that admitted the upload.

The app is deployed from a Serve config with `TCPIngress` at two replicas
(they share the TCP port on this one node, as several replicas of a node
do). A browser upload is admitted by one of them and its 1 MiB pieces are
routed to it by `OwnerRouter`; without that routing, each piece would reach
either replica, and an upload of four routed calls would land whole on its
replica one time in sixteen. The uploads here hold three ~0.9 MB photos
each (three pieces and the finish), so they complete only if the routing
holds; each is followed to done, proving the spooled photos were whole.
"""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from api_client import Browser
from config_apps import app_args, config_app, running_replicas, wait_until

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]

APP = "vggt-it-routing"
UPLOADS = 3


def noise_png(seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def two_ingresses(ray_cluster, tmp_path_factory):
    """A logged-in `Browser` on the app whose TCPIngress runs two replicas."""
    # The session's two apps hold 3.8 of the test cluster's 4 logical CPUs by the time this module runs:
    # this app's six replicas ask for 0.06 in all (a logical share; the work here is three small jobs).
    small = {"ray_actor_options": {"num_cpus": 0.01}}
    deployments = [{"name": "TCPIngress", "num_replicas": 2, **small}] + [
        {"name": name, **small} for name in ("FrameExtractor", "VGGTInference", "GlbExporter", "ShareViewer")
    ]
    with config_app(APP, app_args(tmp_path_factory.mktemp("routing")), deployments):
        wait_until(lambda: running_replicas(APP, "TCPIngress") == 2, 300, "two TCP ingress replicas run")
        browser = Browser(ray_cluster, prefix=f"/{APP}")
        wait_until(lambda: browser.login("alice")[0] == 200, 120, "the API answers a login")
        yield browser


def test_every_piece_of_an_upload_reaches_the_replica_that_admitted_it(two_ingresses):
    browser = two_ingresses
    photos = [noise_png(seed) for seed in range(3)]
    assert sum(map(len, photos)) > 2 * (1 << 20)  # at least three pieces
    jobs = []
    for n in range(UPLOADS):
        status, _, body = browser.upload("photos", photos[n:] + photos[:n])
        assert status == 202, body
        jobs.append(body["id"])
    deadline = time.monotonic() + 300
    for job_id in jobs:  # every upload's photos arrived whole; and nothing is left running at teardown
        while True:
            status, _, job = browser.request("GET", f"/api/reconstructions/{job_id}")
            assert status == 200 and job["state"] != "failed", job
            if job["state"] == "done":
                break
            assert time.monotonic() < deadline, job
            time.sleep(1)
        assert len(job["hash"]) == 64
