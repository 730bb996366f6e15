"""Users, GLB files and their database: models, migrations, login checks, sessions, the GLB store.

Every name others need is importable from here; each lives in its own module.
"""

from serve_app.storage.consistency import StorageReport, check_storage, repair_storage
from serve_app.storage.database import Database
from serve_app.storage.glb_store import GlbStore, StoredGlb
from serve_app.storage.hashes import new_hashed_name, normalize_hash
from serve_app.storage.passwords import OWASP_PARAMS, ScryptParams, hash_password, verify_password
from serve_app.storage.sessions import AddressSessions
from serve_app.storage.throttle import LoginThrottle
from serve_app.storage.users import (
    EmptyPasswordError,
    InvalidUsernameError,
    PasswordTooLongError,
    UnknownUserError,
    UserExistsError,
    UserStore,
    UserStoreError,
)

__all__ = [
    "AddressSessions",
    "Database",
    "EmptyPasswordError",
    "GlbStore",
    "InvalidUsernameError",
    "LoginThrottle",
    "OWASP_PARAMS",
    "PasswordTooLongError",
    "ScryptParams",
    "StorageReport",
    "StoredGlb",
    "UnknownUserError",
    "UserExistsError",
    "UserStore",
    "UserStoreError",
    "check_storage",
    "hash_password",
    "new_hashed_name",
    "normalize_hash",
    "repair_storage",
    "verify_password",
]
