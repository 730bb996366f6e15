#!/usr/bin/env python
"""Load on a running service: many phone-like clients at once, latency, refusals and memory.

    .venv/bin/python scripts/bench_load.py --start-dev --clients 1,5,20 --duration 60
    .venv/bin/python scripts/bench_load.py --host 127.0.0.1 --port 4567 --clients 1,5,20,50 --requests 20 \\
        --create-users --config config/serve.yaml          # users bench0..bench49 in the service's database
    .venv/bin/python scripts/bench_load.py --autoscale --clients 6 --requests 8   # 1 VGGTInference replica vs autoscaling 1-2
    .venv/bin/python scripts/bench_load.py --autoscale --clients 6 --requests 8 --torch-threads 1 --rounds 3

What each round sends and measures: devkit/load.py; --autoscale:
devkit/autoscale_bench.py. Exit status: 0, or 1 if any request was dropped,
2 for bad options.
"""

from __future__ import annotations

import argparse
import sys

from devkit import autoscale_bench, load
from serve_app.storage.location import add_location_options


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Load benchmark of the reconstruction service (TCP protocol).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4567)
    clients = load.parse_clients("1,5,20,50")
    p.add_argument("--clients", type=load.parse_clients, default=clients, help="one round per count")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=float, help="seconds per round (default 60)")
    stop.add_argument("--requests", type=int, help="requests per client per round")
    mix = load.DEFAULT_MIX
    p.add_argument("--mix", type=load.parse_mix, default=load.parse_mix(mix), help=f"weights (default {mix})")
    p.add_argument("--photos", type=int, default=3, help="photos per IMAGE request")
    p.add_argument("--users-prefix", default="bench")
    p.add_argument("--password", default="bench-password")
    p.add_argument("--timeout", type=float, default=600.0, help="socket timeout of every request, seconds")
    p.add_argument("--create-users", action="store_true", help="create the missing users (VIP) in the database")
    p.add_argument("--start-dev", action="store_true", help="start the dev service (serve.dev.yaml) for the run")
    p.add_argument(
        "--autoscale",
        action="store_true",
        help="one IMAGE burst of the largest --clients count on two dev services: VGGTInference fixed at 1 replica, "
        "then autoscaling 1-2; prints both and the throughput ratio",
    )
    p.add_argument(
        "--torch-threads", type=int, default=0, help="--autoscale: model.torch_threads of both services (0: every core)"
    )
    p.add_argument(
        "--rounds", type=int, default=1, help="--autoscale: pairs of bursts (fixed, autoscaling) run one after the other"
    )
    add_location_options(p)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.requests is not None and args.requests < 1:
        parser.error("--requests must be at least 1")
    if args.autoscale:
        if args.duration is not None:
            parser.error("--autoscale runs a burst of --requests per client, not --duration")
        if args.rounds < 1:
            parser.error("--rounds must be at least 1")
        return autoscale_bench.run(args)
    return load.run(args)


if __name__ == "__main__":
    sys.exit(main())
