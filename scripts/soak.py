#!/usr/bin/env python
"""Soak: phone-like clients for a long time, RSS of every Serve replica each minute, outcome counts.

    .venv/bin/python scripts/soak.py --start-dev --clients 20 --users 1 --minutes 60
    .venv/bin/python scripts/soak.py --host 127.0.0.1 --port 4567 --clients 20 --minutes 60   # users soak0.. exist

What each client sends and how growth is judged: devkit/soak.py. Exit status:
0, or 1 if a replica's RSS grew more than --max-growth over the last half of the run.
"""

from __future__ import annotations

import sys

from devkit import soak


def main(argv: list[str] | None = None) -> int:
    return soak.run(soak.build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
