"""Gives the frame tests the `media` helper module (devkit/media.py)."""

from __future__ import annotations

import pytest

from devkit import media as media_files


@pytest.fixture(scope="session")
def media():
    """Writers of test videos and photos."""
    return media_files
