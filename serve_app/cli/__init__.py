"""Command-line tools that need the application: `vggt-export` (export_glb.py), `vggt-check-storage` and
`vggt-fetch-weights` (fetch_weights.py).

Each is also runnable from a checkout as `scripts/<name>.py`; the user tools
live in `serve_app.storage.admin`, the protocol client in `tcp_proxy.client`.
Every tool reports bad input as one line, `<command>: <what is wrong>`, on
stderr and exits with status 2 (`EXIT_BAD_INPUT`); `OneLineParser` keeps
argparse's own errors to that one line.
"""

from __future__ import annotations

import argparse
import sys

EXIT_BAD_INPUT = 2


class InputError(Exception):
    """Bad command-line input, reported in one line."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise InputError instead of printing the usage and exiting."""

    def error(self, message: str):
        raise InputError(message)


def report(prog: str, message: str) -> None:
    """Print `prog: message` on stderr, as one line."""
    first = (str(message).strip().splitlines() or ["error"])[0]
    print(f"{prog}: {first}", file=sys.stderr)
