import pytest

from serve_app.config import AuthSettings
from serve_app.storage import Database, GlbStore, ScryptParams, UserStore

FAST_PARAMS = ScryptParams(n=2**10, r=8, p=1)  # cheap hashes; production uses OWASP_PARAMS
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> str:
    """The URL of an empty database: a SQLite file, or a fresh database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("postgres_server").new_database_url()


@pytest.fixture
def db(database_url):
    database = Database(database_url)
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


@pytest.fixture(params=["local", "s3"])
def root(request, storage_root):
    """The storage root of a test that holds for both kinds: the local folder, or a fresh bucket on the test
    S3 server."""
    from serve_app.storage.blob_root import LocalRoot, open_root

    if request.param == "local":
        return LocalRoot(storage_root)
    server = request.getfixturevalue("s3_server")
    return open_root(server.new_bucket_url(), endpoint_url=server.endpoint_url)


@pytest.fixture
def any_store(db, root):
    """A GLB store on `root` (local folder or bucket)."""
    return GlbStore(db, root)
