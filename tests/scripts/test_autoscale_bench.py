"""devkit/autoscale_bench.py (`scripts/bench_load.py --autoscale`): the two configs it deploys and its options."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from devkit import autoscale_bench, load
from tcp_proxy.codec import IMAGE

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


def burst_spending(glbs: int, **cpu_s: float) -> autoscale_bench.Burst:
    """A burst that answered `glbs` reconstructions with these CPU seconds by process kind."""
    outcomes = [load.Outcome(IMAGE, load.OK, 1.0) for _ in range(glbs)]
    result = load.RoundResult(clients=1, seconds=10.0, logs=[load.ClientLog("u", "127.0.0.1", outcomes)])
    return autoscale_bench.Burst("fixed", result, 1, Counter(cpu_s), clients_cpu_s=0.5)


def test_cpu_per_glb_and_what_a_second_replica_can_gain():
    burst = burst_spending(10, VGGTInference=10.0, GlbExporter=3.0, ServeController=2.0)  # I = 1, O = 0.5
    assert burst.cpu_per_glb() == 1.5 and burst.cpu_per_glb(["VGGTInference"]) == 1.0
    assert burst.ceiling(2) == pytest.approx(4 / 3)  # two cores: 2 * 1 / 1.5
    assert burst.ceiling(1) == 1.0  # one core is busy already
    assert burst.ceiling(8) == 2.0  # cores to spare: twice the replicas, twice the answers
    assert burst_spending(0).ceiling(2) == 1.0
    line = autoscale_bench.cpu_line(burst)
    assert "CPU s per GLB 1.50 (VGGTInference 1.000, GlbExporter 0.300, ServeController 0.200; the clients 0.050)" in line
    assert line.endswith("1.50 cores busy")


def test_the_kernels_share_and_page_faults_per_glb():
    burst = burst_spending(10, VGGTInference=12.0, GlbExporter=2.0, FrameExtractor=0.2)
    burst.kernel_s = Counter(VGGTInference=3.7, GlbExporter=0.9, FrameExtractor=0.04)  # 0.004 per GLB: left out
    burst.faults = Counter(VGGTInference=1_860_000, GlbExporter=350_000, FrameExtractor=3_000)
    line = autoscale_bench.kernel_line(burst)
    assert line == "fixed: of it in the kernel, per GLB: VGGTInference 0.370 (186k faults), GlbExporter 0.090 (35k faults)"
    assert autoscale_bench.kernel_line(burst_spending(10, VGGTInference=10.0)).endswith("nothing of note")


def test_a_rounds_report_gives_its_ratio_and_names_the_limit(capsys):
    fixed = burst_spending(10, VGGTInference=10.0, GlbExporter=5.0)  # 1 GLB/s, I = 1, O = 0.5
    scaled = burst_spending(13, VGGTInference=13.0, GlbExporter=6.5)
    scaled.scaling, scaled.back_to_one_s = "autoscaling", 8.0
    assert autoscale_bench.report(fixed, scaled, torch_threads=1) == pytest.approx(1.3)
    out = capsys.readouterr().out
    assert "| fixed | 1 | 10 | 10 | 10 | 1.000 |" in out and "| autoscaling | 1 | 13 | 13 | 10 | 1.300 |" in out
    assert "= 1.33x" in out and "back to 1 VGGTInference replica 8 s" in out and out.endswith("fixed: 1.30x\n")
    autoscale_bench.report(fixed, scaled, torch_threads=0)
    assert "most a second replica" not in capsys.readouterr().out  # I is spread over every core: no such bound


def test_autoscale_refuses_no_rounds():
    command = [sys.executable, str(SCRIPT), "--autoscale", "--rounds", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and "--rounds must be at least 1" in done.stderr
