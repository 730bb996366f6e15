"""Which driver a database URL gets."""

import pytest

from serve_app.storage import Database


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+psycopg"])
def test_postgresql_urls_use_psycopg_3(scheme):
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is missing: pip install -e '.[postgres]'")
    db = Database(f"{scheme}://someone:p%40ss@db.example:5433/vggt")
    try:
        url = db.engine.url
        assert (db.engine.dialect.name, db.engine.dialect.driver) == ("postgresql", "psycopg")
        assert (url.username, url.password, url.host, url.port, url.database) == (
            "someone",
            "p@ss",
            "db.example",
            5433,
            "vggt",
        )
    finally:
        db.dispose()


def test_sqlite_urls_are_left_alone(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    assert db.engine.dialect.name == "sqlite" and db.engine.url.database == str(tmp_path / "x.db")
    db.dispose()
