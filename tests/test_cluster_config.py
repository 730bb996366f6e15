"""config/serve.cluster.yaml, the multi-node production config, stays deployable."""

from pathlib import Path

import yaml

from serve_app.config import AppSettings

CLUSTER_CONFIG = Path(__file__).resolve().parents[1] / "config" / "serve.cluster.yaml"


def test_the_cluster_config_parses_into_settings(monkeypatch):
    assert "database_url:" not in CLUSTER_CONFIG.read_text()  # no password in the file the dashboard shows
    monkeypatch.setenv("VGGT_DATABASE_URL", "postgresql+psycopg://vggt:pw@db.example.internal:5432/vggt")
    settings = AppSettings.from_file(CLUSTER_CONFIG)
    assert settings.model.device == "cuda"
    assert settings.storage.database_url.startswith("postgresql+psycopg://")
    assert Path(settings.storage.storage_root).is_absolute()
    assert Path(settings.model.checkpoint).is_absolute()


def test_the_cluster_config_places_the_ingress_and_the_three_stages():
    app = yaml.safe_load(CLUSTER_CONFIG.read_text())["applications"][0]
    deployments = {d["name"]: d for d in app["deployments"]}
    assert set(deployments) == {"TCPIngress", "FrameExtractor", "VGGTInference", "GlbExporter"}
    assert deployments["TCPIngress"]["max_replicas_per_node"] == 1
    # The config's ray_actor_options replaces the code's: the GPU must be asked for here.
    assert deployments["VGGTInference"]["ray_actor_options"]["num_gpus"] == 1
    assert all("num_cpus" in d["ray_actor_options"] for d in deployments.values())
