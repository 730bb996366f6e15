"""devkit/autoscale_bench.py (`scripts/bench_load.py --autoscale`): the two configs it deploys and its options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from devkit import autoscale_bench

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_load.py"


@pytest.mark.parametrize("scaling", list(autoscale_bench.SCALINGS))
def test_each_service_differs_only_in_vggt_inferences_entry_and_serve_accepts_it(scaling):
    from ray.serve.schema import ServeDeploySchema

    service = autoscale_bench.ScaledDevService(autoscale_bench.SCALINGS[scaling], torch_threads=1)
    try:
        config = yaml.safe_load(service.write_config().read_text())
    finally:
        service.tmp.cleanup()
    (application,) = ServeDeploySchema.model_validate(config).applications
    (entry,) = application.deployments
    assert entry.name == "VGGTInference" and entry.ray_actor_options.num_cpus == autoscale_bench.INFERENCE_CPUS
    assert application.args["proxy"]["port"] == service.port
    assert application.args["model"]["torch_threads"] == 1  # both services alike
    if scaling == "fixed":
        assert entry.num_replicas == 1 and "autoscaling_config" not in entry.model_fields_set
    else:
        scaling_config = entry.autoscaling_config
        assert (scaling_config["min_replicas"], scaling_config["max_replicas"]) == (1, 2)
    # two replicas and the other deployments fit the 2 logical CPUs of a 2-core machine
    assert 0.05 + 0.1 + 0.5 + 0.25 + 2 * autoscale_bench.INFERENCE_CPUS <= 2


def test_autoscale_runs_a_burst_of_requests_not_a_duration():
    command = [sys.executable, str(SCRIPT), "--autoscale", "--duration", "5"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "--autoscale" in done.stderr
