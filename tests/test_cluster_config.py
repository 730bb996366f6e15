"""config/serve.cluster.yaml, the multi-node production config, stays deployable, and its autoscaling is not
fought by the builder (Serve's own merge of the YAML's `deployments:` over the built app, without Ray)."""

from pathlib import Path

import pytest
import yaml

from serve_app.config import AppSettings

CLUSTER_CONFIG = Path(__file__).resolve().parents[1] / "config" / "serve.cluster.yaml"
STAGES = ("FrameExtractor", "VGGTInference", "GlbExporter")
DATABASE_URL = "postgresql+psycopg://vggt:pw@db.example.internal:5432/vggt"


def cluster_deployments() -> dict[str, dict]:
    app = yaml.safe_load(CLUSTER_CONFIG.read_text())["applications"][0]
    return {d["name"]: d for d in app["deployments"]}


def test_the_cluster_config_parses_into_settings(monkeypatch):
    assert "database_url:" not in CLUSTER_CONFIG.read_text()  # no password in the file the dashboard shows
    monkeypatch.setenv("VGGT_DATABASE_URL", DATABASE_URL)
    settings = AppSettings.from_file(CLUSTER_CONFIG)
    assert settings.model.device == "cuda"
    assert settings.storage.database_url.startswith("postgresql+psycopg://")
    assert Path(settings.storage.storage_root).is_absolute()
    assert Path(settings.model.checkpoint).is_absolute()


def test_the_cluster_config_places_the_ingress_and_the_three_stages():
    deployments = cluster_deployments()
    assert set(deployments) == {"TCPIngress", *STAGES}
    assert deployments["TCPIngress"]["max_replicas_per_node"] == 1
    # The config's ray_actor_options replaces the code's: the GPU must be asked for here.
    assert deployments["VGGTInference"]["ray_actor_options"]["num_gpus"] == 1
    assert all("num_cpus" in d["ray_actor_options"] for d in deployments.values())


def test_the_stages_autoscale_and_one_gpu_replica_targets_one_request():
    deployments = cluster_deployments()
    for name in STAGES:
        scaling = deployments[name]["autoscaling_config"]
        assert "num_replicas" not in deployments[name]  # Serve refuses both in one entry
        assert 1 <= scaling["min_replicas"] < scaling["max_replicas"]
    inference = deployments["VGGTInference"]["autoscaling_config"]
    assert inference["target_ongoing_requests"] == 1 and inference["min_replicas"] == 1


@pytest.fixture(scope="module")
def merged():
    """The deployments as Serve deploys them: the built app with the YAML's `deployments:` laid over it."""
    from ray.serve._private.application_state import override_deployment_info
    from ray.serve._private.build_app import build_app as serve_build
    from ray.serve._private.config import ReplicaConfig
    from ray.serve._private.deployment_info import DeploymentInfo
    from ray.serve.schema import ServeDeploySchema

    from serve_app.app import build_app

    schema = ServeDeploySchema.model_validate(yaml.safe_load(CLUSTER_CONFIG.read_text())).applications[0]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VGGT_DATABASE_URL", DATABASE_URL)
        built = serve_build(build_app(schema.args), name=schema.name)
    infos = {
        d.name: DeploymentInfo(
            deployment_config=d._deployment_config,
            # without the bound handles (they need a running Serve to copy): options only
            replica_config=ReplicaConfig.create(d.func_or_class, ray_actor_options=d._replica_config.ray_actor_options),
            start_time_ms=0,
            deployer_job_id="check",
        )
        for d in built.deployments
    }
    return infos, override_deployment_info(infos, schema)


def test_the_builder_leaves_the_replica_count_of_every_stage_to_the_config(merged):
    built, _ = merged
    for name in STAGES:
        assert not {"num_replicas", "autoscaling_config"} & built[name].deployment_config.user_configured_option_names


def test_the_merged_stages_autoscale_with_the_configs_figures_and_vggt_keeps_its_gpu(merged):
    _, deployed = merged
    deployments = cluster_deployments()
    for name in STAGES:
        config = deployed[name].deployment_config
        given = deployments[name]["autoscaling_config"]
        assert config.autoscaling_config is not None
        assert (config.autoscaling_config.min_replicas, config.autoscaling_config.max_replicas) == (
            given["min_replicas"],
            given["max_replicas"],
        )
        assert "num_replicas" not in config.user_configured_option_names  # nothing pins a count
        # Serve never scales a deployment whose target is over what one replica may take.
        assert config.autoscaling_config.get_target_ongoing_requests() <= config.max_ongoing_requests
    assert deployed["VGGTInference"].replica_config.ray_actor_options["num_gpus"] == 1
    assert deployed["TCPIngress"].deployment_config.num_replicas == 2


def test_the_builder_refuses_a_placement_that_sets_a_replica_count(monkeypatch):
    from serve_app import app as app_module
    from serve_app.deployments.serve_deployments import STAGE_DEPLOYMENTS
    from serve_app.deployments.vggt_inference import VGGTInference

    settings = AppSettings.from_dict({"model": {"preset": "tiny", "device": "cpu"}})
    deployment = next(d for d in STAGE_DEPLOYMENTS.values() if d.func_or_class is VGGTInference)
    app_module.bind_stage(deployment, settings)  # its own placement: options only
    placement = VGGTInference.placement.__func__
    monkeypatch.setattr(
        VGGTInference, "placement", classmethod(lambda cls, s: (s, {**placement(cls, s)[1], "num_replicas": 2}))
    )
    with pytest.raises(ValueError, match="num_replicas"):
        app_module.bind_stage(deployment, settings)
