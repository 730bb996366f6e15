"""Create a user: `python scripts/create_user.py USERNAME PASSWORD [is_vip]`.

Same arguments as the earlier `database/create_user.py`; works on
`sqlite:///./vggt_app.db` in the working directory unless `--database-url`
says otherwise.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from serve_app.storage.admin import create_user_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(create_user_main())
