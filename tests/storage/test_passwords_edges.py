"""Stored password strings at their edges: strict base64, the smallest cost factors, and plaintext that merely
looks like a hash."""

from __future__ import annotations

from serve_app.storage.passwords import ScryptParams, hash_password, needs_rehash, verify_password

FAST = ScryptParams(n=2**10, r=8, p=1)


def with_part(stored: str, index: int, text: str) -> str:
    parts = stored.split("$")
    parts[index] = text
    return "$".join(parts)


def test_a_salt_or_key_that_is_not_strict_base64_never_verifies():
    stored = hash_password("pw", FAST)
    assert verify_password("pw", stored)
    for index in (4, 5):
        part = stored.split("$")[index]
        spoiled = with_part(stored, index, part[:4] + "!" + part[4:])  # lenient decoding would skip the "!"
        assert not verify_password("pw", spoiled)
        assert needs_rehash(spoiled, FAST)


def test_r_may_be_1_and_n_must_be_at_least_2():
    stored = hash_password("pw", ScryptParams(n=2**10, r=1, p=1))
    assert verify_password("pw", stored)
    assert not needs_rehash(stored, ScryptParams(n=2**10, r=1, p=1))
    n_of_1 = with_part(stored, 1, "1")
    assert not verify_password("pw", n_of_1)
    assert needs_rehash(n_of_1, ScryptParams(n=1, r=1, p=1))


def test_plaintext_shaped_like_a_hash_without_the_scrypt_prefix_needs_a_rehash():
    lookalike = with_part(hash_password("pw", FAST), 0, "notscrypt")
    assert needs_rehash(lookalike, FAST)
    assert verify_password(lookalike, lookalike)  # legacy plaintext: compared as it is
