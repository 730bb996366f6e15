#!/usr/bin/env python
"""`python scripts/check_storage.py --help`: serve_app.cli.check_storage (also installed as vggt-check-storage)."""

import sys

from serve_app.cli.check_storage import main

if __name__ == "__main__":
    sys.exit(main())
