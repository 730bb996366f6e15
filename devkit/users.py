"""Accounts the checks and benchmarks log in as, made straight in the service's database."""

from __future__ import annotations


def create_users(database_url: str, users: dict[str, bool], password: str) -> int:
    """Create the missing ones of `users` ({username: is_vip}) with `password`; the number created.

    The database is created (SQLite) and its schema brought up to date when needed.
    """
    from serve_app.config import AuthSettings
    from serve_app.storage import UserStore
    from serve_app.storage.location import open_database

    db = open_database(database_url, create=True)
    try:
        store = UserStore(db, AuthSettings())
        missing = [name for name in users if store.get(name) is None]
        for name in missing:
            store.create(name, password, is_vip=users[name])
        return len(missing)
    finally:
        db.dispose()


def set_active(database_url: str, username: str, active: bool) -> None:
    """Enable or disable `username`."""
    from serve_app.config import AuthSettings
    from serve_app.storage import UserStore
    from serve_app.storage.location import open_database

    db = open_database(database_url, create=False)
    try:
        UserStore(db, AuthSettings()).set_status(username, active)
    finally:
        db.dispose()
