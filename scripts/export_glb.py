#!/usr/bin/env python
"""`python scripts/export_glb.py --help`: runs serve_app.cli.export_glb from a checkout, installed or not."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve_app.cli.export_glb import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
