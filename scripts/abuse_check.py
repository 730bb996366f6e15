#!/usr/bin/env python
"""Attack scenarios against a running service on loopback: measured figures against goals.

    .venv/bin/python scripts/abuse_check.py --start-dev
    .venv/bin/python scripts/abuse_check.py --port 4567 --config config/serve.yaml --scenarios 1,4

The scenarios, what they measure and their goals: devkit/abuse.py. Prints a
markdown table (scenario, measured, goal, met). Exit status 0 when every goal
holds, 1 otherwise, 2 for bad options.
"""

from __future__ import annotations

import argparse
import sys

from devkit import abuse
from serve_app.storage.location import LocationError, add_location_options


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Attack scenarios against the service on loopback, against goals.")
    p.add_argument("--host", type=abuse.loopback_host, default="127.0.0.1", help="a loopback address")
    p.add_argument("--port", type=int, default=4567)
    p.add_argument("--scenarios", type=abuse.parse_scenarios, default=list(range(1, 9)), help="which to run, e.g. 1,4 (default: all 8)")
    p.add_argument("--slow-connections", type=int, default=320)
    p.add_argument("--slow-seconds", type=float, default=30.0)
    p.add_argument("--hold-seconds", type=float, default=15.0, help="how long scenarios 2 and 3 stall")
    p.add_argument("--reader-rate", type=int, default=0, help="bytes/s the slow GET_GLB readers take (0: none)")
    p.add_argument("--password", default="abuse-password")
    p.add_argument("--start-dev", action="store_true", help="start the dev service (serve.dev.yaml) for the run")
    add_location_options(p, storage_root=True)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.slow_connections < 1 or args.slow_seconds <= 0 or args.hold_seconds <= 0 or args.reader_rate < 0:
        parser.error("--slow-connections, --slow-seconds and --hold-seconds must be positive, --reader-rate 0 or more")
    if args.start_dev:
        return abuse.check_dev_service(args)
    try:
        location = abuse.service_location(args)
    except LocationError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    return abuse.check_service(args, location)


if __name__ == "__main__":
    sys.exit(main())
