#!/usr/bin/env python
"""Download the VGGT-1B checkpoint (model.pt) into this checkout and check it: `vggt-fetch-weights` from a checkout.

    python scripts/fetch_weights.py                # -> ./model.pt at the repository root
    python scripts/fetch_weights.py --out /data/model.pt --revision <commit>
    python scripts/fetch_weights.py --verify-only  # check an existing file

The work is serve_app/cli/fetch_weights.py (options, licence, checks, exit status).
"""

from __future__ import annotations

import sys
from pathlib import Path

from serve_app.cli import fetch_weights

REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    return fetch_weights.main(argv, default_out=REPO_ROOT / fetch_weights.FILENAME)


if __name__ == "__main__":
    sys.exit(main())
