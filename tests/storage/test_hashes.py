import pytest
from hypothesis import given
from hypothesis import strategies as st

from tcp_proxy.errors import InvalidHashError
from serve_app.storage import new_hashed_name, normalize_hash

VALID = "0123456789abcdef" * 4


def test_new_hashes_are_64_lowercase_hex_and_distinct():
    names = {new_hashed_name() for _ in range(200)}
    assert len(names) == 200
    assert all(normalize_hash(name) == name for name in names)


@pytest.mark.parametrize(
    "typed",
    [VALID, f"  {VALID}\n", f"{VALID}.glb", f"\t{VALID}.glb \r\n"],
)
def test_white_space_and_glb_suffix_are_tolerated(typed):
    assert normalize_hash(typed) == VALID


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        ".glb",
        VALID[:-1],  # 63 characters
        VALID + "0",  # 65 characters
        VALID.upper(),
        VALID[:-1] + "A",
        VALID[:-1] + "g",
        f"{VALID}.GLB",
        f"{VALID}.glb.glb",
        f"{VALID} .glb",
        VALID[:32] + " " + VALID[33:],
        "../" * 20 + "etc/passwd",
        f"../{VALID}",
        f"{VALID}/../../etc/passwd",
        f"/{VALID[1:]}",
        "..%2f" + VALID[5:],
        VALID[:-1] + "\x00",
        VALID[:-1] + "٣",  # a non-ASCII digit
    ],
)
def test_anything_else_is_an_invalid_hash(typed):
    with pytest.raises(InvalidHashError) as raised:
        normalize_hash(typed)
    assert raised.value.code == "ERROR_INVALID_HASH"


@pytest.mark.parametrize("typed", [None, 123, VALID.encode()])
def test_non_text_is_an_invalid_hash(typed):
    with pytest.raises(InvalidHashError):
        normalize_hash(typed)


@given(st.text(max_size=80))
def test_an_accepted_hash_is_always_64_lowercase_hex(text):
    try:
        result = normalize_hash(text)
    except InvalidHashError:
        return
    assert len(result) == 64 and set(result) <= set("0123456789abcdef")
    assert result in text
