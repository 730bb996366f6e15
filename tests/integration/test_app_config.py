"""The Serve configs and the builder's decisions, without starting Ray.

The running app is covered by test_service.py; these check what `serve run`
reads (config/serve.yaml, config/serve.dev.yaml), the graph the builder makes
from the declared stages, its GPU choice, and the VGGTInference replica's
degraded and broken states directly on the deployment's class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from serve_app import app as app_module
from serve_app.config import AppSettings
from serve_app.deployments import vggt_inference
from serve_app.deployments.serve_deployments import STAGE_DEPLOYMENTS
from serve_app.deployments.stage_runner import unwrap_service_error
from serve_app.stages import STAGES, Frames, Job
from tcp_proxy.errors import BadImageError, ModelUnavailableError, ServiceError

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["serve.yaml", "serve.dev.yaml"])
def test_config_files_load(name):
    from ray.serve.schema import ServeDeploySchema
    from ray.serve._private.utils import import_attr

    doc = yaml.safe_load((REPO / "config" / name).read_text())
    schema = ServeDeploySchema.model_validate(doc)
    (application,) = schema.applications
    assert application.import_path == "serve_app.app:build_app"
    assert import_attr(application.import_path) is app_module.build_app
    settings = AppSettings.from_dict(application.args)
    assert settings.proxy.port == 4567
    assert doc["proxy_location"] != "Disabled" and doc["http_options"]["port"] == 8000  # share pages
    assert application.route_prefix == "/"
    if name == "serve.yaml":  # the existing service's defaults
        assert settings.model.preset == "vggt-1b" and settings.model.checkpoint == "model.pt"
        assert settings.model.device == "auto"
        assert settings.frames.fps == 0.4
        assert settings.export.conf_percentile == 3.0 and settings.export.source == "pointmap"
        assert not (settings.export.mask_black_bg or settings.export.mask_white_bg or settings.export.show_cameras)
        assert settings.storage.database_url == "sqlite:///./vggt_app.db" and settings.storage.storage_root == "."
    else:
        assert settings.model.preset == "tiny" and settings.model.device == "cpu"


def test_builder_makes_an_application_with_explicit_cpu_shares():
    from ray.serve import Application

    built = app_module.build_app({"model": {"preset": "tiny", "device": "cpu"}})
    assert isinstance(built, Application)
    from ray.serve._private.build_app import build_app as serve_build

    deployments = {d.name: d for d in serve_build(built, name="check").deployments}
    assert set(deployments) == {"ShareViewer", "TCPIngress", "FrameExtractor", "VGGTInference", "GlbExporter"}
    total = 0.0
    for d in deployments.values():
        options = d.ray_actor_options
        assert "num_cpus" in options, d.name  # Serve's default of 1 CPU would not fit 2 cores
        total += options["num_cpus"]
    assert total <= 2.0
    assert deployments["TCPIngress"].num_replicas == 1
    assert deployments["VGGTInference"].ray_actor_options.get("num_gpus", 0) == 0


def test_builder_accepts_dotted_cli_args():
    settings = AppSettings.from_dict({"model.preset": "tiny", "proxy.port": "4568", "frames.fps": "1.5"})
    assert (settings.model.preset, settings.proxy.port, settings.frames.fps) == ("tiny", 4568, 1.5)
    with pytest.raises(ValueError):
        app_module.build_app({"model.nonsense": "1"})


def test_builder_binds_one_deployment_per_declared_stage_in_order():
    built = app_module.build_app({"model": {"preset": "tiny", "device": "cpu"}})
    assert built._bound_deployment.name == "ShareViewer"  # the HTTP ingress, the TCP one behind it
    _, tcp_ingress = built._bound_deployment.init_args
    assert tcp_ingress._bound_deployment.name == "TCPIngress"
    settings, *stages = tcp_ingress._bound_deployment.init_args
    assert isinstance(settings, AppSettings)
    assert [bound._bound_deployment.name for bound in stages] == [STAGE_DEPLOYMENTS[s].name for s in STAGES]
    assert [STAGE_DEPLOYMENTS[s].name for s in STAGES] == ["FrameExtractor", "VGGTInference", "GlbExporter"]
    for stage, bound in zip(STAGES, stages):
        assert STAGE_DEPLOYMENTS[stage].func_or_class.stage_class is stage  # each wraps exactly its stage


@pytest.mark.parametrize(
    ("device", "gpus", "num_gpus", "resolved", "threads"),
    [
        ("auto", 0.0, 0, "cpu", -1),  # no GPU: CPU on every core, with a warning, not a replica pending forever
        ("auto", 2.0, 1, "cuda", 0),
        ("cpu", 2.0, 0, "cpu", -1),
        ("cuda", 0.0, 1, "cuda", 0),  # asked for: waits for a GPU node (autoscaling clusters)
    ],
)
def test_inference_placement(monkeypatch, caplog, device, gpus, num_gpus, resolved, threads):
    monkeypatch.setattr(vggt_inference, "cluster_gpus", lambda: (gpus, "the Ray cluster"))
    settings = AppSettings.from_dict({"model": {"device": device}})
    placed, options = STAGE_DEPLOYMENTS[STAGES[1]].func_or_class.placement(settings)
    assert placed.model.device == resolved and placed.model.torch_threads == threads
    assert placed.frames == settings.frames and placed.export == settings.export
    assert options["ray_actor_options"]["num_gpus"] == num_gpus
    assert options["ray_actor_options"]["num_cpus"] > 0
    if device == "auto" and not gpus:
        assert "no GPU" in caplog.text


# --- the VGGTInference replica's states, on the class itself ---------------------------

VGGTInference = vggt_inference.VGGTInference


def _frames(n=2):
    rng = np.random.default_rng(0)
    return Frames(Job(1, "x"), [rng.integers(0, 255, (64, 80, 3), dtype=np.uint8) for _ in range(n)], "images")


def test_inference_without_checkpoint_starts_degraded(tmp_path, caplog):
    settings = AppSettings.from_dict({"model": {"checkpoint": str(tmp_path / "none.pt"), "device": "cpu"}})
    replica = VGGTInference(settings)
    assert "NOT loaded" in caplog.text and "fetch_weights.py" in caplog.text  # the log says how to get model.pt
    replica.check_health()  # healthy: a restart would not bring the file, and would loop
    assert replica.status()["loaded"] is False
    with pytest.raises(ModelUnavailableError):
        replica.run(_frames())


def test_inference_replica_runs_timed_and_turns_unhealthy_after_a_cuda_failure():
    replica = VGGTInference(AppSettings.from_dict({"model": {"preset": "tiny", "device": "cpu"}}))
    out = replica.run(_frames())
    assert out.arrays["world_points"].shape[0] == 2 and list(out.timings) == ["inference"]
    replica.check_health()

    def broken(_frames):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    replica.stage.runner.predict = broken
    with pytest.raises(RuntimeError):
        replica.run(_frames())
    with pytest.raises(RuntimeError, match="unusable"):
        replica.check_health()  # Serve replaces the replica


def test_unwrap_service_error_through_ray_wrapping():
    from ray.exceptions import RayTaskError

    original = BadImageError("photo 2 cannot be decoded")
    try:
        raise original
    except BadImageError as exc:
        wrapped = RayTaskError("decode_images", "traceback text", exc).as_instanceof_cause()
    assert isinstance(wrapped, ServiceError)  # Ray's dual class: still catchable as ours
    plain = unwrap_service_error(wrapped)
    assert type(plain) is BadImageError and plain.message == "photo 2 cannot be decoded"
    other = ValueError("x")
    assert unwrap_service_error(other) is other


def test_a_bad_preset_is_refused_by_the_builder_not_by_a_replica():
    with pytest.raises(ValueError, match="model.preset must be one of"):
        app_module.build_app({"model": {"preset": "huge"}})
