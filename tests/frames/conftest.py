"""Gives the frame tests the `media` helper module (tests/support/media_files.py)."""

from __future__ import annotations

import media_files
import pytest


@pytest.fixture(scope="session")
def media():
    """Writers of test videos and photos."""
    return media_files
