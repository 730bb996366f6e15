import pytest

from serve_app.config import AuthSettings
from serve_app.storage import Database, GlbStore, ScryptParams, UserStore

FAST_PARAMS = ScryptParams(n=2**10, r=8, p=1)  # cheap hashes; production uses OWASP_PARAMS


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'test.db'}")
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def users(db):
    return UserStore(db, AuthSettings(), password_params=FAST_PARAMS)


@pytest.fixture
def storage_root(tmp_path):
    root = tmp_path / "storage"
    root.mkdir()
    return root


@pytest.fixture
def store(db, storage_root):
    return GlbStore(db, storage_root)


@pytest.fixture
def user_id(users):
    return users.create("owner", "owner-password").id
