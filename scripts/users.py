"""Manage users: `python scripts/users.py {add,passwd,vip,disable,enable,list,delete} ...` (see --help)."""

import sys

from serve_app.storage.admin import users_main

if __name__ == "__main__":
    sys.exit(users_main())
