#!/usr/bin/env python
"""`python scripts/client.py --help`: the protocol client (tcp_proxy.client) from a checkout, installed or not."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tcp_proxy.client import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
