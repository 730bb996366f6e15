#!/usr/bin/env python
"""`python scripts/export_glb.py --help`: serve_app.cli.export_glb (also installed as vggt-export)."""

import sys

from serve_app.cli.export_glb import main

if __name__ == "__main__":
    sys.exit(main())
