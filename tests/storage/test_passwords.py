import base64
import hashlib
import hmac
import re
import secrets

import pytest

from serve_app.storage.passwords import (
    HASHLIB_MAXMEM,
    MAX_MEMORY,
    OWASP_PARAMS,
    ScryptParams,
    _scrypt,
    hash_password,
    needs_rehash,
    verify_password,
)

FAST = ScryptParams(n=2**10, r=8, p=1)

# --- known answers --------------------------------------------------------------------

# RFC 7914, section 12: (password, salt, N, r, p) -> the 64-byte key.
RFC_7914_VECTORS = [
    pytest.param(
        "",
        b"",
        16,
        1,
        1,
        "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
        "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906",
        id="N=16",
    ),
    pytest.param(
        "password",
        b"NaCl",
        1024,
        8,
        16,
        "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
        "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640",
        id="N=1024,p=16",
    ),
    pytest.param(
        "pleaseletmein",
        b"SodiumChloride",
        16384,
        8,
        1,
        "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
        "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887",
        id="N=16384",
    ),
    pytest.param(  # 1 GiB and ~8 s on two cores: N at MAX_N, memory at MAX_MEMORY
        "pleaseletmein",
        b"SodiumChloride",
        1048576,
        8,
        1,
        "2101cb9b6a511aaeaddbbe09cf70f881ec568d574a2ffd4dabe5ee9820adaa47"
        "8e56fd8f4ba5d09ffa1c6d927c40f4c337304049e8a952fbcbf45c6fa77a41a4",
        id="N=1048576",
        marks=pytest.mark.slow,
    ),
]

# Made once with today's parameters (OWASP: N=2**17, r=8, p=1; 16-byte salt; 32-byte key):
# every deployment's users table holds such strings, so they must verify forever.
STORED_PASSWORD = "correct horse battery staple"
STORED_HASH = "scrypt$131072$8$1$wJTF1E74jVBY4GceOF1hmQ==$L6GMuqVEkrSytShZGugnHJLjby8hiNbp5kQbK4CneQ8="
# hash_password(STORED_PASSWORD) when the salt drawn is bytes(range(16))
FIXED_SALT_HASH = "scrypt$131072$8$1$AAECAwQFBgcICQoLDA0ODw==$GylG2nH0EXnoO5ncM4QtFXQbh8QSHIx/N4HB34ZPtYs="
# a cheaper hash made once (older or test parameters travel in the string)
STORED_FAST_HASH = "scrypt$1024$8$1$vTz+NuhTMrqtm1UfWKglsg==$8k7/UYaO3f7FkbIReOjypPdrCxHv3mjmIR7wDtXk4tY="

STORED_FORM = re.compile(r"^scrypt\$131072\$8\$1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$")


@pytest.mark.parametrize(("password", "salt", "n", "r", "p", "expected"), RFC_7914_VECTORS)
def test_key_derivation_matches_rfc_7914(password, salt, n, r, p, expected):
    assert _scrypt(password, salt, ScryptParams(n, r, p), 64).hex() == expected


def test_a_hash_stored_with_todays_parameters_keeps_verifying():
    assert verify_password(STORED_PASSWORD, STORED_HASH)
    assert not verify_password(STORED_PASSWORD + " ", STORED_HASH)
    assert not verify_password("Correct horse battery staple", STORED_HASH)
    assert not needs_rehash(STORED_HASH)  # today's parameters: no rewrite at the next LOGIN


def test_a_hash_stored_with_cheaper_parameters_verifies_and_needs_rehash():
    assert verify_password("s3cret", STORED_FAST_HASH)
    assert not verify_password("s3creT", STORED_FAST_HASH)
    assert needs_rehash(STORED_FAST_HASH)


def test_hash_of_a_known_salt_is_the_known_string(monkeypatch):
    """Parameters, salt length, key length and encoding together: one exact string."""
    asked: list[int] = []

    def fixed_salt(size: int) -> bytes:
        asked.append(size)
        return bytes(range(size))

    monkeypatch.setattr(secrets, "token_bytes", fixed_salt)
    assert hash_password(STORED_PASSWORD) == FIXED_SALT_HASH
    assert asked == [16]


def test_stored_form_is_owasp_cost_16_byte_salt_32_byte_key_in_standard_base64():
    stored = hash_password("correct horse")
    assert STORED_FORM.match(stored), stored
    _, n, r, p, salt, key = stored.split("$")
    assert (int(n), int(r), int(p)) == (2**17, 8, 1)
    assert len(base64.b64decode(salt, validate=True)) == 16
    raw_key = base64.b64decode(key, validate=True)
    assert len(raw_key) == 32
    expected = hashlib.scrypt(
        b"correct horse", salt=base64.b64decode(salt), n=2**17, r=8, p=1, maxmem=2**28, dklen=32
    )
    assert raw_key == expected  # the cost written is the cost spent


@pytest.mark.parametrize(("key_bytes", "accepted"), [(15, False), (16, True), (64, True), (65, False)])
def test_stored_key_length_is_bounded(key_bytes, accepted):
    """A truncated key (under 16 bytes) would be cheap to collide with: refused even when right."""
    salt = bytes(range(16))
    key = hashlib.scrypt(b"s3cret", salt=salt, n=FAST.n, r=FAST.r, p=FAST.p, dklen=key_bytes)
    stored = f"scrypt$1024$8$1${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"
    assert verify_password("s3cret", stored) is accepted
    assert needs_rehash(stored, FAST) is not accepted
    assert not verify_password("s3creT", stored)


def _parameters_only(n: int, r: int, p: int) -> str:
    """A well-formed string with these parameters (its key is not the right one)."""
    return f"scrypt${n}${r}${p}${base64.b64encode(bytes(16)).decode()}${base64.b64encode(bytes(32)).decode()}"


@pytest.mark.parametrize(
    ("n", "r", "p", "accepted"),
    [
        (2, 8, 1, True),
        (2**20, 8, 1, True),  # MAX_N
        (2**21, 1, 1, False),
        (1024, 32, 1, True),
        (1024, 33, 1, False),
        (1024, 8, 16, True),
        (1024, 8, 17, False),
        (2**20, 16, 1, False),  # 2 GiB: over MAX_MEMORY
        (2**19, 16, 1, True),  # 1 GiB: at it
        (2**20, 8, 2, False),
    ],
)
def test_stored_parameters_are_bounded(n, r, p, accepted):
    """needs_rehash(stored, same parameters) is False exactly when the string is accepted."""
    assert needs_rehash(_parameters_only(n, r, p), ScryptParams(n, r, p)) is not accepted


def test_every_accepted_cost_fits_in_what_hashlib_allows():
    largest = ScryptParams(2**20, 8, 1)
    assert largest.memory == MAX_MEMORY
    assert largest.maxmem <= HASHLIB_MAXMEM
    assert OWASP_PARAMS.maxmem == 2 * 128 * 2**17 * 8


# --- behaviour ------------------------------------------------------------------------

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


def test_default_parameters_are_owasp():
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
