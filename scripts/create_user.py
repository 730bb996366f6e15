"""Create a user: `python scripts/create_user.py USERNAME [PASSWORD [is_vip]] [--vip]`.

Same arguments as the earlier `database/create_user.py`; a password left out
is asked for (twice, on a terminal) or read as one line of stdin. Works on
`sqlite:///./vggt_app.db` in the working directory unless `--database-url`
says otherwise.
"""

import sys

from serve_app.storage.admin import create_user_main

if __name__ == "__main__":
    sys.exit(create_user_main())
