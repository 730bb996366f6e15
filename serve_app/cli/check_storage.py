"""List (and with --repair delete) glb_files rows without files, files without rows and upload spool
folders of processes that are gone (`vggt-check-storage`). Files awaiting deletion (their row deleted
by an interrupted deletion) are listed but consistent; --repair deletes them too.

`python scripts/check_storage.py [--repair [--force]] [--config FILE] [--database-url URL]
[--storage-root DIR|s3://BUCKET/PREFIX] [--spool-dir DIR]`
works on the service's database and storage root (see serve_app/storage/location.py:
`--config`, `$VGGT_CONFIG`, else the defaults) and never creates a database. Exits 0
when storage is consistent or was repaired, 1 when problems remain, 2 when the
database or storage root cannot be used or a repair is refused.
"""

from __future__ import annotations

import argparse

from serve_app.cli import InputError, OneLineParser
from serve_app.cli import report as report_error
from serve_app.storage import check_storage, repair_storage
from serve_app.storage.blob_root import BlobRoot, settings_root
from serve_app.storage.consistency import DEFAULT_MIN_AGE_S
from serve_app.storage.location import LocationError, add_location_options, open_database, spool_dir, storage_settings
from tcp_proxy.spool_dir import abandoned_spool_dirs, sweep_spool_dirs

EXIT_OK, EXIT_PROBLEMS, EXIT_REFUSED = 0, 1, 2
PROG = "vggt-check-storage"


def main(argv=None) -> int:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    add_location_options(parser, storage_root=True)
    parser.add_argument("--repair", action="store_true", help="delete what is listed")
    parser.add_argument(
        "--force", action="store_true", help="with --repair: delete even when every row would go"
    )
    parser.add_argument(
        "--min-age-s",
        type=float,
        default=DEFAULT_MIN_AGE_S,
        help="ignore files younger than this, they may be saves in progress (default: %(default)s)",
    )
    parser.add_argument(
        "--spool-dir", help="the upload spool directory (default: the config's proxy.spool_dir, else the system temp dir)"
    )
    try:
        args = parser.parse_args(argv)
    except InputError as exc:
        report_error(PROG, str(exc))
        return EXIT_REFUSED
    try:
        storage = storage_settings(args)
        spool = args.spool_dir if args.spool_dir is not None else spool_dir(args)
        try:
            root = settings_root(storage)
        except (ImportError, ValueError, OSError) as exc:
            raise LocationError(f"cannot open the storage root {storage.storage_root}: {exc}") from None
        if not root.available():
            raise LocationError(f"storage root {root.location} does not exist; give --config or --storage-root")
        db = open_database(storage.database_url, create=False)
    except LocationError as exc:
        report_error(PROG, str(exc))
        return EXIT_REFUSED
    try:
        status = _check(db, root, args)
    finally:
        db.dispose()
    return max(status, _check_spool(spool, args))


def _check_spool(spool: str, args: argparse.Namespace) -> int:
    """Spool folders left by servers killed mid-upload (a running server sweeps them when it starts)."""
    abandoned = abandoned_spool_dirs(spool)
    for folder in abandoned:
        print(f"upload spool folder of a process that is gone: {folder}")
    if not abandoned:
        return EXIT_OK
    if not args.repair:
        return EXIT_PROBLEMS
    print(f"repaired: {sweep_spool_dirs(spool)} spool folders deleted")
    return EXIT_OK


def _check(db, root: BlobRoot, args: argparse.Namespace) -> int:
    report = check_storage(db, root, min_age_s=args.min_age_s)
    for hashed_name in report.rows_without_files:
        print(f"row without file: {hashed_name}")
    for key in report.files_without_rows:
        print(f"file without row: {root.describe(key)}")
    for key in report.awaiting_deletion:
        print(f"file awaiting deletion (its row is deleted): {root.describe(key)}")
    print(f"{report.rows_checked} rows checked under {root.location}")
    if report.consistent:
        print("storage is consistent")
        if args.repair and report.awaiting_deletion:
            repair_storage(db, report)
            print(f"repaired: {len(report.awaiting_deletion)} files awaiting deletion deleted")
        return EXIT_OK
    if not args.repair:
        print("run again with --repair to delete these")
        return EXIT_PROBLEMS
    if report.rows_without_files and len(report.rows_without_files) == report.rows_checked and not args.force:
        report_error(
            PROG,
            f"refusing to delete all {report.rows_checked} rows: is {root.location} the right "
            "storage root? Run again with --force if it is",
        )
        return EXIT_REFUSED
    repair_storage(db, report)
    print(f"repaired: {len(report.rows_without_files)} rows and {len(report.files_without_rows)} files deleted")
    return EXIT_OK

