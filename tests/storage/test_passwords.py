import hmac

import pytest

from serve_app.storage.passwords import (
    OWASP_PARAMS,
    ScryptParams,
    hash_password,
    needs_rehash,
    verify_password,
)

FAST = ScryptParams(n=2**10, r=8, p=1)


def test_hash_is_salted_scrypt_with_its_parameters():
    first, second = hash_password("s3cret", FAST), hash_password("s3cret", FAST)
    assert first != second  # a fresh salt each time
    assert first.startswith("scrypt$1024$8$1$")
    assert "s3cret" not in first
    assert verify_password("s3cret", first) and verify_password("s3cret", second)


def test_wrong_password_does_not_verify():
    stored = hash_password("s3cret", FAST)
    assert not verify_password("s3creT", stored)
    assert not verify_password("", stored)


def test_default_parameters_are_owasp_and_fit_in_maxmem():
    assert (OWASP_PARAMS.n, OWASP_PARAMS.r, OWASP_PARAMS.p) == (2**17, 8, 1)
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$131072$8$1$")
    assert verify_password("correct horse", stored)
    assert not needs_rehash(stored)


def test_unicode_passwords_round_trip():
    stored = hash_password("pässwörd 密码", FAST)
    assert verify_password("pässwörd 密码", stored)
    assert not verify_password("passwoerd 密码", stored)


def test_legacy_plaintext_verifies_and_needs_rehash():
    assert verify_password("123456", "123456")
    assert not verify_password("1234567", "123456")
    assert not verify_password("", "123456")
    assert needs_rehash("123456")


def test_legacy_plaintext_is_compared_in_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verify_password("123456", "123456")
    assert calls == [(b"123456", b"123456")]


def test_hash_with_other_parameters_needs_rehash():
    stored = hash_password("s3cret", FAST)
    assert needs_rehash(stored, OWASP_PARAMS)
    assert not needs_rehash(stored, FAST)


@pytest.mark.parametrize(
    "stored",
    [
        "scrypt$",
        "scrypt$1024$8$1$c2FsdA==",
        "scrypt$1000$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,  # n not a power of two
        "scrypt$4194304$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,  # absurd cost
        "scrypt$1024$8$1$not base64!$" + "A" * 44,
        "scrypt$x$8$1$c2FsdA==$c2FsdA==",
    ],
)
def test_malformed_hash_never_verifies_and_needs_rehash(stored):
    assert not verify_password("anything", stored)
    assert not verify_password(stored, stored)  # not taken for plaintext either
    assert needs_rehash(stored, FAST)
