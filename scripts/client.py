#!/usr/bin/env python
"""`python scripts/client.py --help`: the protocol client tcp_proxy.client (also installed as vggt-client)."""

import sys

from tcp_proxy.client import main

if __name__ == "__main__":
    sys.exit(main())
