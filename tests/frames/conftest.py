"""Gives the frame tests the `media` helper module (tests use importlib mode)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load_media():
    name = "frames_test_media"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("media.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="session")
def media():
    """The helpers of tests/frames/media.py."""
    return _load_media()
