"""Password hashing with scrypt from the standard library.

A stored hash reads `scrypt$<n>$<r>$<p>$<salt b64>$<hash b64>`, so the cost
travels with it and can be raised later (`needs_rehash`). Production uses the
OWASP parameters (N=2**17, r=8, p=1: about 128 MiB and a few hundred ms per
hash); tests pass cheaper ones. A stored string over the bounds (N up to
2**20, 128 * N * r * p up to 1 GiB, a 16..64-byte key) never verifies and
needs a rehash. Earlier deployments stored plaintext in the
same column: `verify_password` compares those in constant time too, and
`needs_rehash` says they must be rewritten.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "scrypt"
SALT_BYTES = 16
KEY_BYTES = 32
MAX_N = 2**20  # refuse absurd costs read from a stored string
MAX_MEMORY = 2**30  # and 128 * n * r * p over 1 GiB (N=2**20 with r=8 at most)
HASHLIB_MAXMEM = 2**31 - 1  # hashlib.scrypt refuses a larger maxmem


@dataclass(frozen=True)
class ScryptParams:
    n: int = 2**17
    r: int = 8
    p: int = 1

    @property
    def memory(self) -> int:
        """What scrypt needs, rounded up: 128 * n * r * p bytes."""
        return 128 * self.n * self.r * self.p

    @property
    def maxmem(self) -> int:
        """Memory allowed to OpenSSL: twice `memory`, within what hashlib accepts."""
        return min(2 * self.memory, HASHLIB_MAXMEM)


OWASP_PARAMS = ScryptParams()


def hash_password(password: str, params: ScryptParams = OWASP_PARAMS) -> str:
    """A salted scrypt hash of `password` in the stored string form."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(password, salt, params, KEY_BYTES)
    return "$".join((PREFIX, str(params.n), str(params.r), str(params.p), _b64(salt), _b64(key)))


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (a scrypt string or legacy plaintext)."""
    if not is_scrypt_hash(stored):
        return hmac.compare_digest(password.encode("utf-8"), stored.encode("utf-8"))
    parsed = _parse(stored)
    if parsed is None:
        return False
    params, salt, expected = parsed
    return hmac.compare_digest(_scrypt(password, salt, params, len(expected)), expected)


def needs_rehash(stored: str, params: ScryptParams = OWASP_PARAMS) -> bool:
    """True for legacy plaintext and for hashes made with other parameters."""
    parsed = _parse(stored) if is_scrypt_hash(stored) else None
    return parsed is None or parsed[0] != params


def is_scrypt_hash(stored: str) -> bool:
    return stored.startswith(PREFIX + "$")


def _parse(stored: str) -> tuple[ScryptParams, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6:
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = base64.b64decode(parts[4], validate=True), base64.b64decode(parts[5], validate=True)
    except ValueError:
        return None
    power_of_two = n > 1 and n & (n - 1) == 0
    if not (power_of_two and n <= MAX_N and 1 <= r <= 32 and 1 <= p <= 16 and 16 <= len(key) <= 64):
        return None
    params = ScryptParams(n, r, p)
    return (params, salt, key) if params.memory <= MAX_MEMORY else None


def _scrypt(password: str, salt: bytes, params: ScryptParams, key_bytes: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=params.maxmem,
        dklen=key_bytes,
    )


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
