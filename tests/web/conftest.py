"""A real SQLite database with two users for the browser API's storage and job tests."""

from __future__ import annotations

import pytest

from serve_app.config import AuthSettings
from serve_app.storage import Database, ScryptParams, UserStore
from clock import Clock

FAST = ScryptParams(n=2**10, r=8, p=1)


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'web.db'}")
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def users(db):
    return UserStore(db, AuthSettings(), password_params=FAST)


@pytest.fixture
def alice(users):
    return users.create("alice", "alice-password")


@pytest.fixture
def bob(users):
    return users.create("bob", "bob-password", is_vip=True)


@pytest.fixture
def clock():
    return Clock(1_800_000_000.0)
