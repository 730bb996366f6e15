"""The multinode check's Serve config: the cluster config pinned to one replica per stage, valid for Serve."""

from types import SimpleNamespace

from ray.serve.schema import ServeDeploySchema

from devkit.multinode import EXPECTED_PLACEMENT, check_config


def test_every_deployment_gets_one_replica_and_no_autoscaling_and_serve_accepts_the_config(tmp_path):
    cluster = SimpleNamespace(http_port=18000, tcp_port=14567)
    config = check_config(cluster, "postgresql://x@127.0.0.1/db", tmp_path / "root", tmp_path / "spool")
    deployments = config["applications"][0]["deployments"]
    assert {d["name"] for d in deployments} == set(EXPECTED_PLACEMENT)
    for deployment in deployments:
        assert deployment["num_replicas"] == 1 and "autoscaling_config" not in deployment, deployment["name"]
        assert deployment["ray_actor_options"]["num_cpus"] <= 0.5
    ServeDeploySchema.model_validate(config)  # what `serve deploy` checks first: a count and autoscaling refused
