"""Which database and storage root an administration tool works on.

The tools find them the way the service does: from the `storage` section of
the service's config file (`--config config/serve.yaml`, or the file named
by the `VGGT_CONFIG` environment variable), else the built-in defaults
(`sqlite:///./vggt_app.db`, storage root `.`); `--database-url` and
`--storage-root` override either. A tool that only reads or repairs never
creates a database: a SQLite file that does not exist is an error naming the
path it looked at. Every failure is one line (`LocationError`), never a
traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from pathlib import Path

from serve_app.config import AppSettings, StorageSettings
from serve_app.storage.database import Database

CONFIG_ENV = "VGGT_CONFIG"
# `scheme://user:` up to the last `@`: the password of a URL that does not parse, hidden generously
_UNPARSED_PASSWORD = re.compile(r"(://[^:/@]*:).*@")


class LocationError(Exception):
    """The database or storage root cannot be used; the message says why, in one line."""


def add_location_options(parser: argparse.ArgumentParser, *, storage_root: bool = False) -> None:
    parser.add_argument(
        "--config",
        default=os.environ.get(CONFIG_ENV) or None,
        help=f"the service's config (Serve config or settings YAML) whose storage section to use "
        f"(default: ${CONFIG_ENV}, else sqlite:///./vggt_app.db and storage root .)",
    )
    parser.add_argument("--database-url", help="SQLAlchemy URL; overrides the config's storage.database_url")
    if storage_root:
        parser.add_argument("--storage-root", help="folder (or s3://bucket/prefix) holding out/; overrides the config's storage.storage_root")


def storage_settings(args: argparse.Namespace) -> StorageSettings:
    """The storage section of --config (or the defaults) with the command line's overrides."""
    storage = StorageSettings()
    if args.config:
        try:
            storage = AppSettings.from_file(args.config).storage
        except (OSError, ValueError) as exc:
            raise LocationError(f"cannot read the config {args.config}: {exc}") from None
    overrides = {"database_url": args.database_url, "storage_root": getattr(args, "storage_root", None)}
    return dataclasses.replace(storage, **{key: value for key, value in overrides.items() if value})


def spool_dir(args: argparse.Namespace) -> str:
    """The upload spool directory of --config (`proxy.spool_dir`; "" = the system temp dir)."""
    if not args.config:
        return ""
    try:
        return AppSettings.from_file(args.config).proxy.spool_dir
    except (OSError, ValueError) as exc:
        raise LocationError(f"cannot read the config {args.config}: {exc}") from None


def shown_url(url: str) -> str:
    """`url` as it may be printed or logged: its password replaced by `***`, even when it does not parse."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return _UNPARSED_PASSWORD.sub(r"\1***@", url)


def parse_database_url(url: str):
    """`url` as a SQLAlchemy URL; one that does not parse (or whose port is not a number) raises LocationError."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError:
        raise LocationError(f"invalid database URL {shown_url(url)!r}") from None
    except ValueError:  # the one number in a URL
        raise LocationError(f"invalid database URL {shown_url(url)!r}: its port is not a number") from None


def open_database(url: str, *, create: bool) -> Database:
    """The database at `url`, its schema brought up to date; an absent SQLite file is created only if `create`."""
    from sqlalchemy.exc import SQLAlchemyError

    parsed = parse_database_url(url)
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database)
        if not create and not path.is_file():
            raise LocationError(
                f"no database at {path.resolve()} ({shown}, working directory {Path.cwd()}); "
                "give --config or --database-url, or create one with `users.py add`"
            )
    db = None
    try:
        db = Database(url)
        db.upgrade()
    except (SQLAlchemyError, ImportError, OSError) as exc:
        if db is not None:
            db.dispose()
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if parsed.password:  # a driver may quote what it was given
            first_line = first_line.replace(str(parsed.password), "***")
        raise LocationError(f"cannot open the database {shown}: {first_line}") from None
    return db
