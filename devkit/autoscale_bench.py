"""`scripts/bench_load.py --autoscale`: one burst against a fixed VGGTInference replica, then against autoscaling.

    .venv/bin/python scripts/bench_load.py --autoscale --clients 6 --requests 8

Two dev services (config/serve.dev.yaml: tiny model on CPU), one after the
other, each started fresh and stopped after its burst. They differ only in
the VGGTInference entry of the YAML's `deployments:` (and both take
`--torch-threads`, 0 = every core in each replica, 1 = one core each, the
CPU analogue of one GPU per replica):

- `fixed`: `num_replicas: 1`;
- `autoscaling`: `autoscaling_config` min 1 / max 2, target 1 ongoing request
  per replica, metrics every second, 1 s upscale and 5 s downscale delays.

Both give VGGTInference 0.5 CPU (the YAML's `ray_actor_options`), so two
replicas fit the 2 logical CPUs `serve run` gives a 2-core machine. Each
burst: `--clients` (the largest count) clients send IMAGE requests (3
photos, each request's own bytes) back to back, `--requests` each (default
8). Printed: one row per service (GLBs: IMAGE requests answered with a
reconstruction, and their number per second of the burst, IMAGE latency,
ERROR_BUSY, dropped, the most VGGTInference replica processes seen; requests
count each client's first LOGIN), how long
the autoscaled one took to be back at one replica after the burst, and the
throughput ratio autoscaling / fixed. Exit status 1 if a request was dropped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

from devkit import load
from devkit.dev_service import DevService, run_with_dev_service
from devkit.memory import PeakSampler
from devkit.processes import replica_processes
from devkit.users import create_users
from tcp_proxy.codec import IMAGE

DEFAULT_REQUESTS = 8  # per client
INFERENCE = "VGGTInference"
INFERENCE_CPUS = 0.5  # two replicas and the other deployments fit 2 logical CPUs
SCALE_DOWN_S = 120.0  # how long the autoscaled service is watched going back to one replica
BURST_AUTOSCALING = {  # VGGTInference 1-2, short delays: a burst of seconds scales it up and back (tests too)
    "min_replicas": 1,
    "max_replicas": 2,
    "target_ongoing_requests": 1,
    "metrics_interval_s": 1,
    "look_back_period_s": 2,
    "upscale_delay_s": 1,
    "downscale_delay_s": 5,
}
SCALINGS = {"fixed": {"num_replicas": 1}, "autoscaling": {"autoscaling_config": BURST_AUTOSCALING}}


class ScaledDevService(DevService):
    """The dev service with VGGTInference's replica count given in the YAML's `deployments:`."""

    def __init__(self, scaling: dict, torch_threads: int = 0) -> None:
        super().__init__()  # its ports are outside the kernel's ephemeral range (devkit.ports)
        self.scaling = scaling
        self.torch_threads = torch_threads  # 0: the dev config's (every core, in each replica)

    def write_config(self) -> Path:
        path = super().write_config()
        config = yaml.safe_load(path.read_text())
        entry = {"name": INFERENCE, **self.scaling, "ray_actor_options": {"num_cpus": INFERENCE_CPUS}}
        config["applications"][0]["deployments"] = [entry]
        if self.torch_threads:
            config["applications"][0]["args"]["model"]["torch_threads"] = self.torch_threads
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path


def inference_replicas(root: int) -> int:
    """VGGTInference replica processes below `root` now."""
    return sum(f":{INFERENCE}" in cmd for cmd in replica_processes(root).values())


@dataclass
class Burst:
    scaling: str
    result: load.RoundResult
    replicas_peak: int
    back_to_one_s: float | None = None  # after the burst; None if not watched or not seen

    @property
    def counts(self) -> Counter:
        return Counter(o.result for o in self.result.outcomes)

    @property
    def reconstructions(self) -> int:
        return sum(o.command == IMAGE and o.result == load.OK for o in self.result.outcomes)

    @property
    def per_s(self) -> float:
        """Reconstructions answered OK per second of the burst: the throughput compared."""
        return self.reconstructions / self.result.seconds


def watch_scale_down(root: int, timeout_s: float = SCALE_DOWN_S) -> float | None:
    """Seconds until one VGGTInference replica is left (None if not within `timeout_s`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if inference_replicas(root) <= 1:
            return time.monotonic() - started
        time.sleep(1.0)
    return None


def run_burst(args: argparse.Namespace, scaling: str, usernames: list[str], photos: list[bytes]) -> Burst:
    """The burst against a fresh dev service with `scaling`; stops the service afterwards."""

    def burst(service: DevService) -> Burst:
        create_users(service.database_url, load.vip_users(usernames), args.password)
        work = load.Workload(
            "127.0.0.1", service.port, photos, b"", {IMAGE: 1}, args.password, args.timeout,
            requests=args.requests or DEFAULT_REQUESTS,
        )  # fmt: skip
        root = service.process.pid
        with PeakSampler(lambda: inference_replicas(root), every_s=0.5) as replicas:
            result = load.run_round(work, usernames)
        done = Burst(scaling, result, replicas.peak or 0)
        if scaling == "autoscaling":
            done.back_to_one_s = watch_scale_down(root)
        return done

    return run_with_dev_service(burst, ScaledDevService(SCALINGS[scaling], args.torch_threads))


COLUMNS = [
    "VGGTInference", "clients", "requests", "GLBs", "seconds", "GLBs/s", "IMAGE ms p50/95/99",
    "ERROR_BUSY", "dropped", "replicas (most)",
]  # fmt: skip


def row(burst: Burst) -> str:
    counts, outcomes = burst.counts, burst.result.outcomes
    cells = [
        burst.scaling, burst.result.clients, len(outcomes), burst.reconstructions, f"{burst.result.seconds:.0f}",
        f"{burst.per_s:.3f}",
        load.latency_cell(outcomes, IMAGE), counts[load.BUSY], counts[load.DROPPED], burst.replicas_peak,
    ]  # fmt: skip
    return "| " + " | ".join(map(str, cells)) + " |"


def run(args: argparse.Namespace) -> int:
    """Both bursts, the table, the scale-down time and the ratio; 1 if any request was dropped."""
    usernames = [f"{args.users_prefix}{i}" for i in range(max(args.clients))]
    with tempfile.TemporaryDirectory(prefix="bench_autoscale_") as folder:
        photos, _ = load.make_media(args.photos, Path(folder))
    bursts = [run_burst(args, scaling, usernames, photos) for scaling in SCALINGS]
    print("| " + " | ".join(COLUMNS) + " |\n|" + " --- |" * len(COLUMNS))
    for burst in bursts:
        print(row(burst))
    fixed, scaled = bursts
    for burst in bursts:
        for line in load.notes(burst.result):
            print(f"{burst.scaling}: {line}")
    back = f"not within {SCALE_DOWN_S:.0f} s" if scaled.back_to_one_s is None else f"{scaled.back_to_one_s:.0f} s"
    print(f"autoscaling: back to 1 VGGTInference replica {back} after the burst")
    print(f"throughput (GLBs/s) autoscaling / fixed: {scaled.per_s / fixed.per_s:.2f}x")
    dropped = sum(b.counts[load.DROPPED] for b in bursts)
    if dropped:
        print(f"FAILED: {dropped} request(s) dropped (no reply)", file=sys.stderr)
        return 1
    return 0
