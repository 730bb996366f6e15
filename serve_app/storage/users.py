"""User accounts: login checks and the administration the scripts need.

`authenticate` gives one answer, None, for an unknown user, a wrong password,
a disabled account and a throttled username or address, and takes about the
same time for the first three. Passwords are never logged. A successful login
against a legacy plaintext password (or an outdated hash) rewrites it as a
scrypt hash.

The accounts it gives out (`authenticate`, `current`) are `StampedUser`s:
they carry a digest of the stored password hash, so a session made by a
LOGIN can tell that the password changed since (and end). `set_password`
also ends the user's address sessions at once.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from serve_app.config import AuthSettings
from serve_app.storage.database import Database
from serve_app.storage.models import (
    STATUS_ACTIVE,
    STATUS_DISABLED,
    AddressSession,
    utcnow,
)
from serve_app.storage.models import User as UserRow
from serve_app.storage.passwords import (
    OWASP_PARAMS,
    ScryptParams,
    hash_password,
    needs_rehash,
    verify_password,
)
from serve_app.storage.throttle import LoginThrottle
from tcp_proxy.backend import User

if TYPE_CHECKING:
    from serve_app.storage.blob_root import BlobRoot
    from serve_app.storage.lifecycle import Deletion

log = logging.getLogger(__name__)

MAX_PASSWORD_CHARS = 1024  # longer input is refused before any hashing
MAX_USERNAME_CHARS = 80
NUL = "\x00"  # never in a username: PostgreSQL text cannot hold it


@dataclass(frozen=True, eq=False)
class StampedUser(User):
    """An account with `password_stamp`, a digest of its password hash when it was read; equal to the
    plain `User` of the same account (the stamp is not who the user is)."""

    password_stamp: str = field(default="", repr=False)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, User):
            return NotImplemented
        return (self.id, self.username, self.is_vip) == (other.id, other.username, other.is_vip)

    __hash__ = User.__hash__


def password_stamp(password_hash: str) -> str:
    """A short digest of a stored password hash: changes whenever the hash does (a new password)."""
    return hashlib.sha256(password_hash.encode("utf-8", "backslashreplace")).hexdigest()[:32]


class UserStoreError(ValueError):
    """Bad input to an administration call; the message says what is wrong."""


class UserExistsError(UserStoreError):
    pass


class UnknownUserError(UserStoreError):
    pass


class EmptyPasswordError(UserStoreError):
    pass


class InvalidUsernameError(UserStoreError):
    pass


class PasswordTooLongError(UserStoreError):
    pass


class UserStore:
    """Users in the `users` table, with login throttling."""

    def __init__(
        self,
        db: Database,
        auth_settings: AuthSettings,
        *,
        password_params: ScryptParams = OWASP_PARAMS,
        throttle: LoginThrottle | None = None,
    ):
        self._db = db
        self._params = password_params
        self.throttle = throttle or LoginThrottle(db, auth_settings)
        self._decoy_hash: str | None = None  # verified for unknown users, to even out timing

    def authenticate(self, username: Any, password: Any, address: str | None = None) -> StampedUser | None:
        """The user (stamped with the hash now stored) if the password is right and the account active, else None."""
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        if len(password) > MAX_PASSWORD_CHARS or len(username) > MAX_USERNAME_CHARS:
            log.info("login refused from %s: input too long", address)
            return None
        if not (_is_utf8(username) and _is_utf8(password)):  # a lone surrogate from JSON's \ud800
            return self._refuse(username, address, "text that is not valid Unicode")
        if NUL in username:
            return self._refuse(username, address, "a NUL character in the username")
        if self.throttle.is_blocked(username, address):
            log.info("login refused for %r from %s: throttled", username, address)
            return None
        with self._db.session() as session:
            user = session.scalar(select(UserRow).where(UserRow.username == username))
        if user is None:
            verify_password(password, self._decoy())
            return self._refuse(username, address, "unknown user")
        if needs_rehash(user.password_hash, self._params):
            # legacy plaintext, an unparseable hash, or one made with other (weaker) parameters verifies
            # in no time or less: spend at least a current verification, as for any other account
            verify_password(password, self._decoy())
        if not verify_password(password, user.password_hash):
            return self._refuse(username, address, "wrong password")
        if user.status != STATUS_ACTIVE:
            return self._refuse(username, address, "account disabled")
        stored_hash = user.password_hash
        if needs_rehash(stored_hash, self._params):
            stored_hash = self._rewrite_hash(user.id, password, stored_hash)
        self.throttle.record_success(username, address, user.id)
        return _stamped(user, stored_hash)

    def current(self, user_id: int) -> StampedUser | None:
        """The account as it is now (VIP re-computed, password stamp), or None if it is gone or disabled."""
        with self._db.session() as session:
            user = session.get(UserRow, user_id)
        if user is None or user.status != STATUS_ACTIVE:
            return None
        return _stamped(user, user.password_hash)

    def prepare(self) -> None:
        """Build the decoy hash now, so the first unknown-user login takes as long as the others."""
        self._decoy()

    def get(self, username: str) -> User | None:
        """The user's current id and VIP status, or None if there is no such user."""
        if NUL in username:
            return None
        with self._db.session() as session:
            user = session.scalar(select(UserRow).where(UserRow.username == username))
        return None if user is None else _info(user)

    def create(
        self,
        username: str,
        password: str,
        is_vip: bool = False,
        vip_expire_time: datetime | None = None,
    ) -> User:
        """Add an active user; raises UserExistsError if the name is taken."""
        _check_username(username)
        password_hash = self._hash(password)
        user = UserRow(
            username=username,
            password_hash=password_hash,
            is_vip=is_vip,
            vip_expire_time=_naive_utc(vip_expire_time),
            status=STATUS_ACTIVE,
        )
        try:
            with self._db.session() as session:
                session.add(user)
        except IntegrityError:
            raise UserExistsError(f"user {username!r} already exists") from None
        return _info(user)

    def set_password(self, username: str, password: str) -> None:
        """Replace the password; the user's address sessions end with the old one (connection logins
        end when they next re-read the account)."""
        password_hash = self._hash(password)
        with self._db.session() as session:
            user = _existing(session, username)
            user.password_hash = password_hash
            session.execute(delete(AddressSession).where(AddressSession.user_id == user.id))

    def set_vip(self, username: str, is_vip: bool, expire_time: datetime | None = None) -> None:
        """Grant VIP (until `expire_time`, or for good when None) or take it away."""
        with self._db.session() as session:
            user = _existing(session, username)
            user.is_vip = is_vip
            user.vip_expire_time = _naive_utc(expire_time) if is_vip else None

    def set_status(self, username: str, active: bool) -> None:
        """Enable or disable the account."""
        with self._db.session() as session:
            user = _existing(session, username)
            user.status = STATUS_ACTIVE if active else STATUS_DISABLED

    def delete(self, username: str, root: BlobRoot) -> Deletion:
        """Delete the user with their stored results (rows, then the files under `root`), address sessions
        and login throttle entries; UnknownUserError if there is no such user."""
        from serve_app.storage.lifecycle import ResultLifecycle  # it builds on this module's tables

        deleted = ResultLifecycle(self._db, root).delete_user(username)
        if deleted is None:
            raise UnknownUserError(f"no user named {username!r}")
        return deleted

    def list(self) -> list[dict[str, Any]]:
        """Every user as a dict (no password hashes), ordered by id."""
        with self._db.session() as session:
            users = session.scalars(select(UserRow).order_by(UserRow.id)).all()
        return [
            {
                "id": user.id,
                "username": user.username,
                "is_vip": bool(user.is_vip),
                "vip_expire_time": user.vip_expire_time,
                "vip_active": _vip_in_force(user),
                "active": user.status == STATUS_ACTIVE,
                "created_at": user.created_at,
            }
            for user in users
        ]

    def _hash(self, password: str) -> str:
        if not isinstance(password, str) or password == "":
            raise EmptyPasswordError("password must not be empty")
        if len(password) > MAX_PASSWORD_CHARS:
            raise PasswordTooLongError(f"password must be at most {MAX_PASSWORD_CHARS} characters")
        return hash_password(password, self._params)

    def _decoy(self) -> str:
        if self._decoy_hash is None:
            self._decoy_hash = hash_password("decoy password", self._params)
        return self._decoy_hash

    def _refuse(self, username: str, address: str | None, reason: str) -> None:
        log.info("login refused for %r from %s: %s", username, address, reason)
        self.throttle.record_failure(username, address)
        return None

    def _rewrite_hash(self, user_id: int, password: str, verified_hash: str) -> str:
        """Store a current scrypt hash in place of `verified_hash`, only if that is still the stored one
        (an administrator may have set a new password meanwhile); a failure does not fail the login.
        The hash the login is stamped with: the new one if written, else `verified_hash`."""
        new_hash = hash_password(password, self._params)
        try:
            with self._db.session() as session:
                written = session.execute(
                    update(UserRow)
                    .where(UserRow.id == user_id, UserRow.password_hash == verified_hash)
                    .values(password_hash=new_hash)
                ).rowcount
        except SQLAlchemyError:
            log.warning("could not rewrite the password hash of user id %s", user_id, exc_info=True)
            return verified_hash
        return new_hash if written else verified_hash


def _info(user: UserRow) -> User:
    return User(id=user.id, username=user.username, is_vip=_vip_in_force(user))


def _stamped(user: UserRow, password_hash: str) -> StampedUser:
    info = _info(user)
    return StampedUser(info.id, info.username, info.is_vip, password_stamp=password_stamp(password_hash))


def _vip_in_force(user: UserRow) -> bool:
    return bool(user.is_vip) and (user.vip_expire_time is None or user.vip_expire_time > utcnow())


def _existing(session, username: str) -> UserRow:
    user = session.scalar(select(UserRow).where(UserRow.username == username))
    if user is None:
        raise UnknownUserError(f"no user named {username!r}")
    return user


def _check_username(username: str) -> None:
    if not isinstance(username, str) or not username.strip():
        raise InvalidUsernameError("username must not be empty")
    if username != username.strip():
        raise InvalidUsernameError("username must not start or end with white space")
    if NUL in username:
        raise InvalidUsernameError("username must not contain NUL characters")
    if len(username) > MAX_USERNAME_CHARS:
        raise InvalidUsernameError(f"username must be at most {MAX_USERNAME_CHARS} characters")


def _naive_utc(moment: datetime | None) -> datetime | None:
    """Aware times are converted to UTC; naive ones are taken as UTC already."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def _is_utf8(text: str) -> bool:
    """False for strings holding lone surrogates (valid JSON, but no UTF-8 encoding exists)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True

