#!/usr/bin/env python
"""Download the VGGT-1B checkpoint (model.pt) from the Hugging Face hub and check it.

    python scripts/fetch_weights.py                # -> ./model.pt at the repository root
    python scripts/fetch_weights.py --out /data/model.pt
    python scripts/fetch_weights.py --verify-only  # check an existing file

How it is downloaded and checked: devkit/weights_download.py. Exit status: 0
ok, 1 failed check, 2 hub unreachable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devkit import weights_download

REPO_ROOT = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = REPO_ROOT / weights_download.FILENAME
    parser.add_argument("--out", type=Path, default=default, help="destination (default: repo root)")
    parser.add_argument("--force", action="store_true", help="download even if --out already verifies")
    parser.add_argument("--verify-only", action="store_true", help="only check the file at --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return weights_download.fetch(args.out, force=args.force, verify_only=args.verify_only)


if __name__ == "__main__":
    sys.exit(main())
