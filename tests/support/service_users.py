"""Users and limits of the integration suite's service (shared by its fixtures and tests)."""

from __future__ import annotations

from devkit.ports import free_port  # noqa: F401  (the suite's fixed ports, outside the ephemeral range)

PASSWORD = "s3cret-pass"
USERS = {"alice": False, "vip": True, "carol": False}  # username -> is_vip
DISABLED_USER = "mallory"

MAX_PAYLOAD = 8 * 1024 * 1024
READ_TIMEOUT_S = 2.0
SMALL_FRAME_TIMEOUT_S = 3.0  # a LOGIN dribbled byte by byte is cut off this long after its first byte
SESSION_TTL_S = 6.0  # long enough to outlive a listener restart (test_chaos), short enough to wait out
ACCOUNT_RECHECK_S = 1.0  # sessions see a disabled account or lost VIP this late at most
VIDEO_FPS = 1.0  # a 3 s clip gives 3 frames
APP_NAME = "vggt-it"
NO_MODEL_APP_NAME = "vggt-it-nomodel"
POSTGRES_APP_NAME = "vggt-it-postgres"
S3_APP_NAME = "vggt-it-s3"


def create_users(database_url: str) -> None:
    """The test users, straight in the service's database (upgraded first)."""
    from serve_app.config import AuthSettings
    from serve_app.storage import Database, UserStore

    db = Database(database_url)
    try:
        db.upgrade()
        users = UserStore(db, AuthSettings())
        for name, vip in USERS.items():
            users.create(name, PASSWORD, is_vip=vip)
        users.create(DISABLED_USER, PASSWORD)
        users.set_status(DISABLED_USER, False)
    finally:
        db.dispose()
