"""`vggt-results`: list, delete and expire stored results (GLB rows and files) from the command line.

`vggt-results [--config FILE] [--database-url URL] [--storage-root DIR|s3://BUCKET/PREFIX] COMMAND`:

* `list [--user USERNAME]`: every result (or one user's), oldest first;
* `delete HASH...`: the results' rows, then their files; the share links
  then answer 404 and GET_GLB `ERROR_HASH_NOT_FOUND`. An unknown or
  malformed hash deletes nothing;
* `expire [--older-than-days N] [--dry-run] [--limit N]`: results older
  than N days (default: the config's `storage.retention_days`), the oldest
  first, at most `--limit` of them (the service also runs this on its own,
  `serve_app.storage.lifecycle.ExpiryTimer`).

The database and root are found like every administration tool's
(`serve_app.storage.location`); none is ever created. Bad input is one
line, `vggt-results: <what is wrong>`, and exit status 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from serve_app.cli import EXIT_BAD_INPUT, InputError, OneLineParser, report
from serve_app.storage.blob_root import BlobRoot, settings_root
from serve_app.storage.lifecycle import (
    DEFAULT_BATCH,
    ResultLifecycle,
    UnknownResultsError,
)
from serve_app.storage.location import (
    LocationError,
    add_location_options,
    open_database,
    storage_settings,
)
from tcp_proxy.errors import InvalidHashError

PROG = "vggt-results"


def open_storage_root(args: argparse.Namespace) -> BlobRoot:
    """The storage root of the command line's settings; LocationError when it cannot be used."""
    storage = storage_settings(args)
    try:
        root = settings_root(storage)
    except (ImportError, ValueError, OSError) as exc:
        raise LocationError(f"cannot open the storage root {storage.storage_root}: {exc}") from None
    if not root.available():
        raise LocationError(f"storage root {root.location} does not exist; give --config or --storage-root")
    return root


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog=PROG, description="List, delete and expire stored results (GLBs).")
    add_location_options(parser, storage_root=True)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="show stored results, oldest first")
    listing.add_argument("--user", help="only this user's")
    deleting = commands.add_parser("delete", help="delete results (rows and files) by share hash")
    deleting.add_argument("hashes", nargs="+", metavar="HASH")
    expire = commands.add_parser("expire", help="delete results older than the retention")
    expire.add_argument("--older-than-days", type=positive_int, help="default: the config's storage.retention_days")
    expire.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    expire.add_argument(
        "--limit", type=positive_int, default=DEFAULT_BATCH, help="results per run (default: %(default)s)"
    )
    try:
        args = parser.parse_args(argv)
        days = _retention(args) if args.command == "expire" else None
        root = open_storage_root(args)
        db = open_database(storage_settings(args).database_url, create=False)
    except (InputError, LocationError) as error:
        report(PROG, str(error))
        return EXIT_BAD_INPUT
    try:
        lifecycle = ResultLifecycle(db, root)
        if args.command == "list":
            _list(lifecycle, args.user)
        elif args.command == "delete":
            deleted = lifecycle.delete(args.hashes)
            for name in deleted.hashes:
                print(f"deleted {name}")
            print(f"{len(deleted.hashes)} results and {len(deleted.files)} files deleted")
        else:
            _expire(lifecycle, days, args)
    except (InvalidHashError, UnknownResultsError) as error:
        report(PROG, str(getattr(error, "message", None) or error.args[0]))
        return EXIT_BAD_INPUT
    finally:
        db.dispose()
    return 0


def _retention(args: argparse.Namespace) -> int:
    if args.older_than_days is not None:
        return args.older_than_days
    days = storage_settings(args).retention_days
    if days is None:
        raise InputError("no retention: give --older-than-days or set storage.retention_days in the config")
    return days


def _list(lifecycle: ResultLifecycle, username: str | None) -> None:
    results = lifecycle.list(username)
    print(f"{'hash':<64}  {'user':<16} {'bytes':>10}  {'created (UTC)':<16}  name")
    for result in results:
        created = f"{result.created_at:%Y-%m-%d %H:%M}" if result.created_at else "-"
        owner = result.username if result.username is not None else "-"
        print(f"{result.hashed_name:<64}  {owner:<16} {result.file_size:>10}  {created:<16}  {result.original_name}")
    print(f"{len(results)} results, {sum(result.file_size for result in results)} bytes")


def _expire(lifecycle: ResultLifecycle, days: int, args: argparse.Namespace) -> None:
    expired = lifecycle.expire(days, dry_run=args.dry_run, limit=args.limit)
    verb = "would delete" if args.dry_run else "deleted"
    for name in expired.hashes:
        print(f"{verb} {name}")
    if args.dry_run:
        print(f"{len(expired.hashes)} results older than {days} days would be deleted (dry run)")
    else:
        print(f"{len(expired.hashes)} results older than {days} days and {len(expired.files)} files deleted")
