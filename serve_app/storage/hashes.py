"""Share hashes: how they are made and how a typed one is checked.

A hash is 64 lowercase hex characters from `secrets` (256 random bits), so a
share link cannot be guessed from a user id or a time.
"""

from __future__ import annotations

import re
import secrets

from tcp_proxy.errors import InvalidHashError

HASH_PATTERN = re.compile(r"[0-9a-f]{64}")
GLB_SUFFIX = ".glb"


def new_hashed_name() -> str:
    """A fresh random share hash."""
    return secrets.token_hex(32)


def normalize_hash(text: str) -> str:
    """The hash in `text`, tolerating surrounding white space and a trailing `.glb`.

    Anything else that is not exactly 64 lowercase hex characters raises
    `InvalidHashError`, so only a well-formed hash ever reaches a query.
    """
    if not isinstance(text, str):
        raise InvalidHashError("hash must be text")
    candidate = text.strip()
    if candidate.endswith(GLB_SUFFIX):
        candidate = candidate[: -len(GLB_SUFFIX)]
    if not HASH_PATTERN.fullmatch(candidate):
        raise InvalidHashError("hash must be 64 lowercase hex characters")
    return candidate
