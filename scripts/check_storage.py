"""List (and with --repair delete) glb_files rows without files and files without rows.

`python scripts/check_storage.py [--repair] [--database-url URL] [--storage-root DIR]`
exits 0 when storage is consistent or was repaired, 1 when problems remain.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from serve_app.config import StorageSettings  # noqa: E402
from serve_app.storage import Database, check_storage, repair_storage  # noqa: E402
from serve_app.storage.consistency import DEFAULT_MIN_AGE_S  # noqa: E402


def main(argv=None) -> int:
    defaults = StorageSettings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repair", action="store_true", help="delete what is listed")
    parser.add_argument("--database-url", default=defaults.database_url, help="default: %(default)s")
    parser.add_argument("--storage-root", default=defaults.storage_root, help="default: %(default)s")
    parser.add_argument(
        "--min-age-s",
        type=float,
        default=DEFAULT_MIN_AGE_S,
        help="ignore files younger than this, they may be saves in progress (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    db = Database(args.database_url)
    try:
        db.upgrade()
        report = check_storage(db, args.storage_root, min_age_s=args.min_age_s)
        for hashed_name in report.rows_without_files:
            print(f"row without file: {hashed_name}")
        for path in report.files_without_rows:
            print(f"file without row: {path}")
        if report.consistent:
            print("storage is consistent")
            return 0
        if not args.repair:
            print("run again with --repair to delete these")
            return 1
        repair_storage(db, report)
        print(f"repaired: {len(report.rows_without_files)} rows and {len(report.files_without_rows)} files deleted")
        return 0
    finally:
        db.dispose()


if __name__ == "__main__":
    sys.exit(main())
