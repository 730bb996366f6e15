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
throughput ratio autoscaling / fixed. `--rounds N` runs N such pairs one
after the other, the fixed service first in odd rounds and second in even
ones (a drift of the machine's pace then favours each side alike), and ends
with every round's ratio and their median: on a shared machine the pace of
the same service changed by up to 40 % from one burst to the next, so one
pair can be off by that much either way. Exit status 1 if a request was
dropped.

What limits the ratio: each burst also prints the CPU seconds per GLB of the
service's processes by kind (`devkit.cpu_time`: each replica's deployment,
the Serve controller, Ray's other processes; the clients, in this process,
apart). With one torch thread per replica, I the inference replica's CPU per
GLB and O everyone else's, one replica answers at most 1/I a second and two
at most min(2/I, C/(I+O)) on C cores, so the fixed service's figures give the
most autoscaling can gain here: min(2, C*I/(I+O)) (1.0 when one replica already
keeps every core busy). A second line per burst gives the kernel's share of
each kind's CPU per GLB and its minor page faults: a replica whose big
temporaries get fresh pages each request (see `tune_malloc` in
serve_app/deployments/stage_deployment.py) pays for zero-filling them there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from devkit import load
from devkit.cpu_time import CpuMeter
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
    cpu_s: Counter  # CPU seconds over the burst by process kind (devkit.cpu_time)
    clients_cpu_s: float  # this process's (the load's clients)
    back_to_one_s: float | None = None  # after the burst; None if not watched or not seen
    kernel_s: Counter = field(default_factory=Counter)  # the kernel's share of cpu_s, by process kind
    faults: Counter = field(default_factory=Counter)  # minor page faults over the burst, by process kind

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

    def cpu_per_glb(self, kinds: list[str] | None = None) -> float:
        """CPU seconds per reconstruction of `kinds` (every kind when None), the clients excepted."""
        spent = sum(s for kind, s in self.cpu_s.items() if kinds is None or kind in kinds)
        return spent / max(self.reconstructions, 1)

    def ceiling(self, cores: int) -> float:
        """The most a second single-threaded inference replica can gain on `cores` cores: min(2, C*I/(I+O))."""
        inference, everything = self.cpu_per_glb([INFERENCE]), self.cpu_per_glb()
        return max(1.0, min(2.0, cores * inference / everything)) if everything else 1.0


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
        clients_start = time.process_time()
        with PeakSampler(lambda: inference_replicas(root), every_s=0.5) as replicas, CpuMeter(root) as cpu:
            result = load.run_round(work, usernames)
        done = Burst(
            scaling, result, replicas.peak or 0, cpu.by_kind, time.process_time() - clients_start,
            kernel_s=cpu.kernel_by_kind, faults=cpu.faults_by_kind,
        )  # fmt: skip
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


def cpu_line(burst: Burst) -> str:
    """CPU seconds per GLB by process kind, the biggest first, and the cores kept busy."""
    glbs = max(burst.reconstructions, 1)
    shares = ", ".join(f"{kind} {s / glbs:.3f}" for kind, s in burst.cpu_s.most_common())
    busy = sum(burst.cpu_s.values()) / burst.result.seconds
    return (
        f"{burst.scaling}: CPU s per GLB {burst.cpu_per_glb():.2f} ({shares}; the clients {burst.clients_cpu_s / glbs:.3f}), "
        f"{busy:.2f} cores busy"
    )


def kernel_line(burst: Burst) -> str:
    """The kernel's share of each kind's CPU seconds per GLB, and its minor page faults per GLB (thousands),
    the biggest share first: zero-filling fresh pages for big temporaries shows here, not in a profile."""
    glbs = max(burst.reconstructions, 1)
    shares = ", ".join(
        f"{kind} {s / glbs:.3f} ({burst.faults[kind] / glbs / 1000:.0f}k faults)"
        for kind, s in burst.kernel_s.most_common()
        if s / glbs >= 0.005
    )
    return f"{burst.scaling}: of it in the kernel, per GLB: {shares or 'nothing of note'}"


def report(fixed: Burst, scaled: Burst, torch_threads: int) -> float:
    """One round's table, notes, CPU shares and scale-down time; its throughput ratio autoscaling / fixed."""
    print("| " + " | ".join(COLUMNS) + " |\n|" + " --- |" * len(COLUMNS))
    for burst in (fixed, scaled):
        print(row(burst))
    for burst in (fixed, scaled):
        for line in load.notes(burst.result):
            print(f"{burst.scaling}: {line}")
    for burst in (fixed, scaled):
        print(cpu_line(burst))
    for burst in (fixed, scaled):
        print(kernel_line(burst))
    if torch_threads == 1:
        cores = os.cpu_count() or 1
        print(
            f"most a second replica can gain here, from the fixed service's CPU per GLB: "
            f"min(2, {cores} * I / (I + O)) = {fixed.ceiling(cores):.2f}x"
        )
    back = f"not within {SCALE_DOWN_S:.0f} s" if scaled.back_to_one_s is None else f"{scaled.back_to_one_s:.0f} s"
    print(f"autoscaling: back to 1 VGGTInference replica {back} after the burst")
    ratio = scaled.per_s / fixed.per_s
    print(f"throughput (GLBs/s) autoscaling / fixed: {ratio:.2f}x", flush=True)
    return ratio


def run(args: argparse.Namespace) -> int:
    """`args.rounds` rounds of both bursts, each reported as it ends, then every round's ratio and their
    median; 1 if any request was dropped. Odd rounds run the fixed service first, even ones the autoscaled."""
    usernames = [f"{args.users_prefix}{i}" for i in range(max(args.clients))]
    with tempfile.TemporaryDirectory(prefix="bench_autoscale_") as folder:
        photos, _ = load.make_media(args.photos, Path(folder))
    ratios, dropped = [], 0
    for number in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"\nround {number} of {args.rounds}")
        order = list(SCALINGS) if number % 2 else list(reversed(SCALINGS))  # fixed first, then autoscaling first
        bursts = {scaling: run_burst(args, scaling, usernames, photos) for scaling in order}
        fixed, scaled = bursts["fixed"], bursts["autoscaling"]
        ratios.append(report(fixed, scaled, args.torch_threads))
        dropped += fixed.counts[load.DROPPED] + scaled.counts[load.DROPPED]
    if args.rounds > 1:
        print(
            f"\nratios by round: {', '.join(f'{r:.2f}x' for r in ratios)}; "
            f"median {statistics.median(ratios):.2f}x, least {min(ratios):.2f}x"
        )
    if dropped:
        print(f"FAILED: {dropped} request(s) dropped (no reply)", file=sys.stderr)
        return 1
    return 0
