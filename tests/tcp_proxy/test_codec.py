"""Byte-for-byte and fuzz tests of the sans-IO codec."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcp_proxy import codec
from tcp_proxy.backend import GlbInfo
from tcp_proxy.codec import (
    GET_GLB,
    IMAGE,
    LIST,
    LOGIN,
    NEED_DATA,
    VIDEO,
    ConnectionClosed,
    FrameStart,
    GetGlb,
    ImageChunk,
    ImagesEnd,
    ImageStart,
    ListGlbs,
    Login,
    ProtocolError,
    Rejected,
    RequestReader,
    VideoChunk,
    VideoEnd,
)

MAX_PAYLOAD = 10_000


def frame(command: int, payload: bytes) -> bytes:
    return struct.pack(">BI", command, len(payload)) + payload


def image_payload(images) -> bytes:
    return struct.pack(">I", len(images)) + b"".join(struct.pack(">I", len(i)) + i for i in images)


def reader(max_images: int = 20) -> RequestReader:
    return RequestReader(max_payload_bytes=MAX_PAYLOAD, max_images=max_images)


def drain(r: RequestReader) -> list:
    out = []
    while (event := r.next_event()) is not NEED_DATA:
        out.append(event)
        if isinstance(event, ConnectionClosed):
            break
    return out


def feed(data: bytes, pieces=None, eof: bool = True, max_images: int = 20) -> list:
    """All events for `data` fed in `pieces` (cut points); VIDEO chunks merged."""
    r = reader(max_images)
    events = []
    cuts = [0, *(pieces or []), len(data)]
    for a, b in zip(cuts, cuts[1:]):
        if b > a:
            r.receive_data(data[a:b])
            events += drain(r)
    if eof:
        r.receive_data(b"")
        events += drain(r)
    return merge_chunks(events)


@dataclass(frozen=True)
class ImagesSent:
    """The tests' view of a complete IMAGE frame: its images put together from ImageStart/ImageChunk/ImagesEnd."""

    images: tuple[bytes, ...]


def merge_chunks(events: list) -> list:
    """VIDEO chunks merged; the events of a complete IMAGE frame as one ImagesSent (an image frame
    refused part way through leaves only its Rejected, as a server discards what it spooled)."""
    out: list = []
    building: list[bytearray] | None = None
    for e in events:
        if isinstance(e, ImageStart):
            building = (building or []) + [bytearray()]
            assert len(building[-1]) == 0 and e.size >= 0
        elif isinstance(e, ImageChunk):
            assert building, "image bytes before ImageStart"
            building[-1] += e.data
        elif isinstance(e, ImagesEnd):
            images = tuple(bytes(b) for b in (building or []))
            assert len(images) == e.count
            out.append(ImagesSent(images))
            building = None
        elif isinstance(e, VideoChunk) and out and isinstance(out[-1], VideoChunk):
            out[-1] = VideoChunk(out[-1].data + e.data)
        else:
            if isinstance(e, Rejected):
                building = None
            out.append(e)
    return out


# -- replies -------------------------------------------------------------
def test_login_replies_are_exact():
    assert codec.encode_login(True, False) == b"\x00\x00\x00\x0c[true,false]"
    assert codec.encode_login(True, True) == b"\x00\x00\x00\x0b[true,true]"
    assert codec.encode_login(False) == b"\x00\x00\x00\x0d[false,false]"
    assert codec.encode_login(False, True) == b"\x00\x00\x00\x0d[false,false]"


def test_reconstruction_reply():
    name = "a" * 64 + ".glb"
    assert codec.reconstruction_header(name, 3) + b"GLB" == b"\x00\x00\x00\x44" + name.encode() + b"\x00\x00\x00\x03GLB"
    with pytest.raises(ValueError):
        codec.reconstruction_header("x" * 1025, 0)


def test_glb_reply():
    assert codec.glb_header(4) + b"glTF" == b"\x00\x00\x00\x04glTF"
    assert codec.glb_header(0) == b"\x00\x00\x00\x00"


@pytest.mark.parametrize(
    "command, expected",
    [
        (IMAGE, b"\x00\x00\x00\x00\x00\x00\x00\x13ERROR_NOT_LOGGED_IN"),
        (VIDEO, b"\x00\x00\x00\x00\x00\x00\x00\x13ERROR_NOT_LOGGED_IN"),
        (GET_GLB, b"\x00\x00\x00\x13ERROR_NOT_LOGGED_IN"),
        (LOGIN, b"\x00\x00\x00\x0d[false,false]"),
        (77, b"\x00\x00\x00\x13ERROR_NOT_LOGGED_IN"),
    ],
)
def test_error_shapes(command, expected):
    assert codec.encode_error(command, "ERROR_NOT_LOGGED_IN") == expected


def test_unknown_command_reply():
    assert codec.encode_error(9, codec.UNKNOWN_COMMAND) == b"\x00\x00\x00\x0fUNKNOWN_COMMAND"


# -- requests ------------------------------------------------------------
LOGIN_FRAME = frame(LOGIN, b'{"u": "demo", "p": "123456"}')
IMAGES = [b"\xff\xd8jpeg", b"", b"\x89PNG" * 3]
IMAGE_FRAME = frame(IMAGE, image_payload(IMAGES))
VIDEO_FRAME = frame(VIDEO, b"\x00\x00\x00\x18ftypmp42" + bytes(range(40)))
GET_FRAME = frame(GET_GLB, b"  " + b"ab" * 32 + b".glb\n")
STREAM = LOGIN_FRAME + IMAGE_FRAME + VIDEO_FRAME + GET_FRAME + frame(7, b"xyz") + frame(VIDEO, b"")
EXPECTED = [
    FrameStart(LOGIN, len(LOGIN_FRAME) - 5),
    Login("demo", "123456"),
    FrameStart(IMAGE, len(IMAGE_FRAME) - 5),
    ImagesSent(tuple(IMAGES)),
    FrameStart(VIDEO, len(VIDEO_FRAME) - 5),
    VideoChunk(VIDEO_FRAME[5:]),
    VideoEnd(),
    FrameStart(GET_GLB, len(GET_FRAME) - 5),
    GetGlb("  " + "ab" * 32 + ".glb\n"),
    Rejected(7, codec.UNKNOWN_COMMAND),
    FrameStart(VIDEO, 0),
    VideoEnd(),
    ConnectionClosed(),
]


def test_stream_in_one_piece():
    assert feed(STREAM) == EXPECTED


def test_stream_split_at_every_byte_boundary():
    for cut in range(1, len(STREAM)):
        assert feed(STREAM, [cut]) == EXPECTED, cut


def test_stream_byte_by_byte():
    assert feed(STREAM, list(range(1, len(STREAM)))) == EXPECTED


def test_password_not_in_repr():
    assert "123456" not in repr(Login("demo", "123456"))


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"[1,2]", b'{"u": "a"}', b'{"u": 1, "p": "x"}', b"\xff\xfe", b"[" * 5000],
)
def test_bad_login_payload_is_an_invalid_login(payload):
    events = feed(frame(LOGIN, payload))
    assert events[1] == Login(None, None) and not events[1].valid


def test_header_over_limit_raises_before_body():
    r = reader()
    r.receive_data(struct.pack(">BI", VIDEO, MAX_PAYLOAD + 1))
    with pytest.raises(ProtocolError) as info:
        r.next_event()
    assert (info.value.command, info.value.code) == (VIDEO, codec.ERROR_PAYLOAD_TOO_LARGE)
    with pytest.raises(ProtocolError):  # stays failed
        r.next_event()


def test_small_commands_have_a_small_limit():
    r = RequestReader(max_payload_bytes=10**9, max_images=20)
    r.receive_data(struct.pack(">BI", LOGIN, codec.SMALL_PAYLOAD_BYTES + 1))
    with pytest.raises(ProtocolError) as info:
        r.next_event()
    assert info.value.command == LOGIN


def test_unknown_command_over_limit_is_fatal():
    r = reader()
    r.receive_data(struct.pack(">BI", 200, MAX_PAYLOAD + 1))
    with pytest.raises(ProtocolError) as info:
        r.next_event()
    assert (info.value.command, info.value.code) == (200, codec.UNKNOWN_COMMAND)


def test_eof_mid_payload_is_incomplete():
    r = reader()
    r.receive_data(VIDEO_FRAME[:20])
    r.receive_data(b"")
    assert isinstance(r.next_event(), FrameStart)
    assert isinstance(r.next_event(), VideoChunk)
    with pytest.raises(ProtocolError) as info:
        r.next_event()
    assert (info.value.command, info.value.code) == (VIDEO, codec.ERROR_INCOMPLETE_REQUEST)


def test_eof_mid_header():
    r = reader()
    r.receive_data(b"\x02\x00")
    assert r.next_event() is NEED_DATA and r.in_frame and r.pending_command == IMAGE
    r.receive_data(b"")
    with pytest.raises(ProtocolError) as info:
        r.next_event()
    assert info.value.command == IMAGE


@pytest.mark.parametrize(
    "payload",
    [
        b"",  # no count
        b"\x00\x00",  # short count
        struct.pack(">I", 3) + struct.pack(">I", 1) + b"a",  # count larger than the sizes sent
        struct.pack(">I", 1) + struct.pack(">I", 10) + b"abc",  # size past the payload
        image_payload([b"abc"]) + b"trailing",  # bytes left over
        struct.pack(">I", 2) + struct.pack(">I", 4) + b"abcd",  # second size missing
    ],
)
def test_image_framing_mismatch(payload):
    events = feed(frame(IMAGE, payload) + LOGIN_FRAME)
    assert events[:2] == [FrameStart(IMAGE, len(payload)), Rejected(IMAGE, codec.ERROR_IMAGE_REQUEST)]
    assert events[2:] == EXPECTED[:2] + [ConnectionClosed()]  # the next frame is read normally


def test_too_many_images():
    events = feed(frame(IMAGE, image_payload([b"x"] * 3)), max_images=2)
    assert events[1] == Rejected(IMAGE, codec.ERROR_TOO_MANY_IMAGES)
    assert events[2:] == [ConnectionClosed()]


def test_skip_payload_drops_the_frame():
    r = reader()
    r.receive_data(IMAGE_FRAME[:9])
    assert isinstance(r.next_event(), FrameStart)
    r.skip_payload()
    assert r.pending_command is None and r.in_frame
    r.receive_data(IMAGE_FRAME[9:] + LOGIN_FRAME)
    assert drain(r) == EXPECTED[:2]
    assert not r.in_frame


def test_zero_images_is_framed_correctly():
    assert feed(frame(IMAGE, image_payload([])))[1] == ImagesSent(())


def test_image_bytes_are_passed_on_as_they_arrive_not_held():
    big = bytes(range(256)) * 4096  # 1 MiB
    data = frame(IMAGE, image_payload([big, b"tail"]))
    r = RequestReader(max_payload_bytes=len(data), max_images=4)
    events = []
    for start in range(0, len(data), 65536):
        r.receive_data(data[start : start + 65536])
        events += drain(r)
        assert len(r._buf) < 16  # at most a size field waits; image bytes leave at once
    starts = [e for e in events if isinstance(e, ImageStart)]
    chunks = [e for e in events if isinstance(e, ImageChunk)]
    assert [e.size for e in starts] == [len(big), 4] and max(len(c.data) for c in chunks) <= 65536
    assert events[-1] == ImagesEnd(2) and b"".join(c.data for c in chunks) == big + b"tail"


# -- fuzz ----------------------------------------------------------------
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6), st.booleans())
def test_random_bytes_only_raise_protocol_error(data, cuts, eof):
    r = RequestReader(max_payload_bytes=200, max_images=4)
    try:
        for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)]):
            if data[a:b]:  # b"" would mean the end of the stream
                r.receive_data(data[a:b])
                drain(r)
        if eof:
            r.receive_data(b"")
            drain(r)
    except ProtocolError as exc:
        assert exc.code.isascii() and (exc.command is None or 0 <= exc.command <= 255)


def _frames():
    login = st.builds(lambda u, p: frame(LOGIN, ('{"u":%s,"p":%s}' % (u, p)).encode()), st.just('"x"'), st.just('"y"'))
    images = st.lists(st.binary(max_size=20), max_size=4).map(lambda i: frame(IMAGE, image_payload(i)))
    other = st.tuples(st.sampled_from([VIDEO, GET_GLB, 0, 5, 255]), st.binary(max_size=40)).map(lambda t: frame(*t))
    return st.lists(st.one_of(login, images, other), max_size=6).map(b"".join)


@FUZZ
@given(_frames(), st.lists(st.integers(0, 400), max_size=8))
def test_any_split_gives_the_same_events(stream, cuts):
    whole = feed(stream)
    assert whole[-1] == ConnectionClosed()
    assert feed(stream, sorted(c for c in cuts if c <= len(stream))) == whole


# -- LIST ----------------------------------------------------------------
def test_list_request_and_its_limits():
    assert feed(frame(LIST, b"")) == [FrameStart(LIST, 0), ListGlbs(), ConnectionClosed()]
    assert feed(frame(LIST, b"ignored")) == [FrameStart(LIST, 7), ListGlbs(), ConnectionClosed()]
    r = RequestReader(max_payload_bytes=10**9, max_images=4)
    r.receive_data(struct.pack(">BI", LIST, codec.SMALL_PAYLOAD_BYTES + 1))
    with pytest.raises(ProtocolError) as info:
        drain(r)
    assert (info.value.command, info.value.code) == (LIST, codec.ERROR_PAYLOAD_TOO_LARGE)


def test_list_reply_bytes():
    when = datetime(2026, 11, 30, 1, 2, 3)
    glbs = [GlbInfo("ab" * 32, "photos – ünï", 1234, when), GlbInfo("cd" * 32, "", 0, None)]
    body = (
        '[{"hash":"' + "ab" * 32 + '","original_name":"photos – ünï","file_size":1234,'
        '"created_at":"2026-11-30T01:02:03Z"},'
        '{"hash":"' + "cd" * 32 + '","original_name":"","file_size":0,"created_at":null}]'
    ).encode("utf-8")
    assert codec.encode_list(glbs) == struct.pack(">I", len(body)) + body
    assert codec.encode_list([]) == b"\x00\x00\x00\x02[]"
    assert json.loads(codec.encode_list(glbs)[4:])[0]["created_at"] == "2026-11-30T01:02:03Z"
    assert codec.encode_error(LIST, "ERROR_NOT_LOGGED_IN") == b"\x00\x00\x00\x13ERROR_NOT_LOGGED_IN"
