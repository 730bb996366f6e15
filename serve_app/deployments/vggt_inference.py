"""`VGGTInference`: the inference stage (PyTorch) as a deployment, on a GPU where the cluster has one.

Placement (`VGGTInference.placement`, used by the builder): with
`model.device: auto` the builder asks the cluster (`ray.cluster_resources()`;
under `serve run config.yaml` the builder runs inside the cluster, so Ray is
initialised). With a GPU, the replica asks for `num_gpus: 1` and runs on
cuda. Without one it says so in the log and runs on CPU, with torch using
every core the replica may run on, rather than leaving a replica pending
forever for a GPU that never comes. `device: cuda` always asks for a GPU (for
autoscaling clusters that add GPU nodes on demand); `device: cpu` never
does. Called outside Ray (`serve build`), it counts the local CUDA devices.

Health: a missing or corrupt checkpoint does NOT fail the constructor or the
health check: that would make Serve restart the replica in a loop (each
time re-reading a multi-GB file) and keep the application from ever becoming
RUNNING, taking LOGIN and GET_GLB down with it. The replica starts degraded
instead (see `serve_app.stages.inference`): the log says once, at ERROR
level, why and how to get `model.pt`, the `vggt_model_loaded` gauge is 0 and
`status()` reports it. `check_health` fails only for breakage a restart can
fix (a CUDA error that leaves the device unusable). Fix the checkpoint and
redeploy to load it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

from serve_app.config import AppSettings, ModelSettings
from serve_app.stages import InferenceStage

from .stage_deployment import StageDeployment

log = logging.getLogger("ray.serve")  # Serve's logger: shows in `serve run` output and the replica logs

INFERENCE_CPUS = 1.0
WEIGHTS_HINT = (
    "reconstructions answer ERROR_MODEL_NOT_LOADED until it is there: fetch it on this node with "
    "`vggt-fetch-weights --out <model.checkpoint>` (it prints the licence to read), then redeploy; "
    "or run config/serve.dev.yaml for the untrained tiny model"
)


class VGGTInference(StageDeployment):
    """The VGGT model, loaded once per replica."""

    stage_class = InferenceStage
    serve_options = {
        "ray_actor_options": {"num_cpus": INFERENCE_CPUS},
        # Two per replica: the runner runs one forward pass at a time (its own lock), and the
        # second request's frames are fetched and preprocessed meanwhile.
        "max_ongoing_requests": 2,
        "health_check_period_s": 10,
        "health_check_timeout_s": 30,
    }
    stage: InferenceStage

    def __init__(self, settings: AppSettings) -> None:
        start = time.perf_counter()
        super().__init__(settings)
        stage = self.stage
        if stage.error is not None:
            hint = WEIGHTS_HINT.replace("<model.checkpoint>", str(Path(settings.model.checkpoint).resolve()))
            log.error("VGGT model NOT loaded: %s; %s", stage.error.message, hint)
        else:
            log.info(
                "VGGT model %r loaded on %s in %.1f s",
                settings.model.preset,
                stage.runner.device,
                time.perf_counter() - start,
            )
        self.metrics.set_model_loaded(stage.ready)

    @classmethod
    def placement(cls, settings: AppSettings) -> tuple[AppSettings, dict[str, Any]]:
        device, num_gpus = inference_device(settings.model)
        model = dataclasses.replace(settings.model, device=device)
        if device == "cpu" and model.torch_threads == 0:
            # The forward pass is the one heavy computation of a request: let torch use the
            # node's cores (Ray would limit it to the CPU share through OMP_NUM_THREADS).
            model = dataclasses.replace(model, torch_threads=-1)
        options = {"ray_actor_options": {"num_cpus": INFERENCE_CPUS, "num_gpus": num_gpus}}
        return dataclasses.replace(settings, model=model), options

    def status(self) -> dict[str, Any]:
        return self.stage.status()

    def check_health(self) -> None:
        # Refresh the gauge (Ray exports a gauge only for a while after it was last set).
        self.metrics.set_model_loaded(self.stage.ready)
        super().check_health()


def inference_device(model: ModelSettings) -> tuple[str, int]:
    """The device VGGTInference runs on, and the GPUs it asks Ray for (see the module docstring)."""
    gpus, where = cluster_gpus()
    if model.device == "cpu":
        use_gpu = False
    elif model.device == "cuda":
        use_gpu = True
        if not gpus:
            log.warning(
                "model.device is 'cuda' but %s has no GPU now: VGGTInference stays pending until a GPU "
                "node joins; use device 'auto' to fall back to CPU",
                where,
            )
    else:
        use_gpu = bool(gpus)
        if not use_gpu:
            log.warning(
                "%s has no GPU: VGGTInference runs on CPU (slow: minutes per reconstruction with the "
                "1B model); start the cluster with a GPU for production",
                where,
            )
    if use_gpu:
        log.info("%s has %s GPU(s): VGGTInference asks for num_gpus=1", where, gpus)
        return "cuda", 1
    return "cpu", 0


def cluster_gpus() -> tuple[float, str]:
    """GPUs of the Ray cluster when connected, else of this machine; and which one was asked."""
    try:
        import ray

        if ray.is_initialized():
            return float(ray.cluster_resources().get("GPU", 0)), "the Ray cluster"
    except Exception:  # pragma: no cover - fall back below
        log.debug("could not read the cluster's resources", exc_info=True)
    try:
        import torch

        return float(torch.cuda.device_count()), "this machine (Ray not initialised)"
    except Exception:  # pragma: no cover
        return 0.0, "this machine"
