#!/usr/bin/env python
"""`python scripts/check_storage.py --help`: runs serve_app.cli.check_storage from a checkout, installed or not."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serve_app.cli.check_storage import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
