"""`MultipartUpload`: a browser's upload parsed piece by piece into a spool file; each part checked at its headers."""

from __future__ import annotations

import asyncio
import random

import pytest

from multipart_body import boundary_of, multipart
from serve_app.web_upload import MultipartUpload
from tcp_proxy.errors import ServiceError
from tcp_proxy.spool import Spool

PHOTOS = [b"\xff\xd8first photo\r\n--not a boundary", b"", b"third" * 1000]


def receiver(tmp_path, body_headers, *, declared=None, max_images=3, video_allowed=False):
    body, headers = body_headers
    spool = Spool(tmp_path, ".upload")
    size = len(body) if declared is None else declared
    return MultipartUpload(boundary_of(headers), size, spool, max_images=max_images, video_allowed=video_allowed), body


async def fed(upload: MultipartUpload, body: bytes, cuts: list[int]) -> None:
    for start, end in zip([0, *cuts], [*cuts, len(body)]):
        await upload.feed(body[start:end])


def code_of(tmp_path, fields, **kwargs) -> str:
    """The error code of an upload of `fields`, or "ok" once it finished."""
    upload, body = receiver(tmp_path, multipart(fields), **kwargs)

    async def run():
        await fed(upload, body, [])
        await upload.finish()

    try:
        asyncio.run(run())
    except ServiceError as exc:
        return exc.code
    finally:
        upload.spool.discard()
    return "ok"


@pytest.mark.parametrize("seed", range(40))
def test_photos_come_out_byte_exact_however_the_body_is_cut(tmp_path, seed):
    rng = random.Random(seed)
    upload, body = receiver(tmp_path, multipart([("photos", data) for data in PHOTOS]))
    cuts = sorted(rng.sample(range(1, len(body)), rng.randint(1, 30)))
    if seed == 0:
        cuts = list(range(1, len(body)))  # one byte at a time
    path = asyncio.run(_finished(upload, body, cuts))
    with open(path, "rb") as f:
        assert f.read() == b"".join(PHOTOS)
    assert (upload.kind, upload.sizes) == ("photos", [len(p) for p in PHOTOS])
    assert [bytes(view) for view in upload.spool.map_parts(upload.sizes)] == PHOTOS
    upload.spool.discard()


async def _finished(upload, body, cuts):
    await fed(upload, body, cuts)
    return await upload.finish()


def test_a_video_is_one_file_part(tmp_path):
    upload, body = receiver(tmp_path, multipart([("video", b"\x00\x00\x00 ftypmp42 frames")]), video_allowed=True)
    path = asyncio.run(_finished(upload, body, [10]))
    assert (upload.kind, open(path, "rb").read()) == ("video", b"\x00\x00\x00 ftypmp42 frames")
    upload.spool.discard()


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ([("photos", b"a")] * 3, "ok"),  # at max_images
        ([("photos", b"a")] * 4, "ERROR_TOO_MANY_IMAGES"),  # one over
        ([("photos", b"a"), ("video", b"v")], "ERROR_BAD_REQUEST"),  # both kinds
        ([("video", b"v"), ("photos", b"a")], "ERROR_VIP_REQUIRED"),  # refused at the first part already
        ([("photos", b"a"), ("note", "hi")], "ERROR_BAD_REQUEST"),  # a plain field
        ([("other", b"a")], "ERROR_BAD_REQUEST"),  # a file in another field
        ([], "ERROR_BAD_REQUEST"),  # no file at all
        ([("video", b"v")], "ERROR_VIP_REQUIRED"),  # this account may not send videos
    ],
)
def test_each_part_is_checked(tmp_path, fields, code):
    assert code_of(tmp_path, fields) == code


def test_a_video_where_allowed_but_only_one(tmp_path):
    assert code_of(tmp_path, [("video", b"v")], video_allowed=True) == "ok"
    assert code_of(tmp_path, [("video", b"v"), ("video", b"w")], video_allowed=True) == "ERROR_BAD_REQUEST"
    assert code_of(tmp_path, [("video", b"v"), ("photos", b"a")], video_allowed=True) == "ERROR_BAD_REQUEST"


def test_the_refusal_comes_at_the_offending_part_before_the_rest_is_read(tmp_path):
    fields = [("photos", b"a")] * 3 + [("photos", b"b" * 10_000)]
    upload, body = receiver(tmp_path, multipart(fields))
    fourth = body.index(b"b" * 10)  # the fourth part's headers end just before its data

    async def run():
        await upload.feed(body[:fourth])

    with pytest.raises(ServiceError) as raised:
        asyncio.run(run())
    assert raised.value.code == "ERROR_TOO_MANY_IMAGES"
    assert upload.received == fourth < len(body)
    upload.spool.discard()


def test_the_body_must_match_its_content_length_and_close(tmp_path):
    body, headers = multipart([("photos", b"abc")])
    assert code_of(tmp_path, [("photos", b"abc")], declared=len(body)) == "ok"  # at
    assert code_of(tmp_path, [("photos", b"abc")], declared=len(body) - 1) == "ERROR_PAYLOAD_TOO_LARGE"  # longer
    assert code_of(tmp_path, [("photos", b"abc")], declared=len(body) + 1) == "ERROR_INCOMPLETE_REQUEST"  # shorter
    unclosed = body[: body.rindex(b"--" + boundary_of(headers).encode())]
    upload, _ = receiver(tmp_path, (unclosed, headers))

    async def run():
        await upload.feed(unclosed)
        await upload.finish()

    with pytest.raises(ServiceError) as raised:
        asyncio.run(run())
    assert raised.value.code == "ERROR_BAD_REQUEST"  # no closing boundary
    upload.spool.discard()


@pytest.mark.parametrize("seed", range(30))
def test_hostile_bodies_get_a_service_error_never_another_exception(tmp_path, seed):
    rng = random.Random(seed)
    body, headers = multipart([("photos", b"a" * 50), ("photos", b"b" * 20)])
    mutated = bytearray(body)
    for _ in range(rng.randint(1, 8)):
        mutated[rng.randrange(len(mutated))] = rng.randrange(256)
    upload, _ = receiver(tmp_path, (bytes(mutated), headers))

    async def run():
        await fed(upload, bytes(mutated), sorted(rng.sample(range(1, len(mutated)), 5)))
        await upload.finish()

    try:
        asyncio.run(run())
    except ServiceError as exc:
        assert exc.code.startswith("ERROR_")
    finally:
        upload.spool.discard()
