#!/usr/bin/env python
"""The service split over two Ray nodes on one machine, end to end.

    sudo .venv/bin/python scripts/multinode_check.py      # root: unshare, and PostgreSQL as `postgres`

The steps and what each checks: devkit/multinode.py. Prints PASS or FAIL with
the time of each step; the exit status is 0 on PASS, 1 on FAIL, 77 (SKIP) when
this machine cannot run it.
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        description="Deploy the service over two Ray nodes on this machine (PostgreSQL, shared storage), "
        "reconstruct over TCP, check the rows and files, tear it all down. Needs root."
    )


def main(argv: list[str] | None = None) -> int:
    build_parser().parse_args(argv)
    from devkit import multinode

    return multinode.run()


if __name__ == "__main__":
    sys.exit(main())
