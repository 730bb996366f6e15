"""Manage users: `python scripts/users.py {add,passwd,vip,disable,enable,list} ...` (see --help)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from serve_app.storage.admin import users_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(users_main())
