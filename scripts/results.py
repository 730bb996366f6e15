"""Manage stored results: `python scripts/results.py {list,delete,expire} ...` (see --help)."""

import sys

from serve_app.storage.results_admin import main

if __name__ == "__main__":
    sys.exit(main())
