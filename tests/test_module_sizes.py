"""Modules stay small enough to read in one sitting: none of the packages' modules over 500 lines."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 500
MODULES = sorted(path for package in ("serve_app", "tcp_proxy", "devkit") for path in (ROOT / package).rglob("*.py"))


def test_the_packages_are_found():
    assert len(MODULES) > 50 and any(path.name == "server.py" for path in MODULES)


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_module_is_at_most_500_lines(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by concept"
