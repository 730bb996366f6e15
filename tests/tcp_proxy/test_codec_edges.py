"""The codec at its limits: payloads and counts at, under and over each bound, the command owed a reply when a
stream ends inside a frame, what an over-limit frame leaves unread, and the exact bytes of replies."""

from __future__ import annotations

import json
import struct
import time
from datetime import datetime, timedelta, timezone

import pytest

from tcp_proxy.backend import GlbInfo
from tcp_proxy.codec import (
    ERROR_IMAGE_REQUEST,
    ERROR_INCOMPLETE_REQUEST,
    ERROR_PAYLOAD_TOO_LARGE,
    ERROR_TOO_MANY_IMAGES,
    GET_GLB,
    IMAGE,
    LIST,
    LOGIN,
    MAX_NAME_BYTES,
    NEED_DATA,
    SMALL_PAYLOAD_BYTES,
    UNKNOWN_COMMAND,
    VIDEO,
    FrameStart,
    ImageStart,
    ProtocolError,
    Rejected,
    RequestReader,
    command_name,
    encode_list,
    encode_login,
    reconstruction_header,
)

MAX_PAYLOAD = 10_000


def header(command: int, length: int) -> bytes:
    return struct.pack(">BI", command, length)


def u32(*values: int) -> bytes:
    return b"".join(struct.pack(">I", v) for v in values)


def reader(data: bytes = b"", eof: bool = False, max_images: int = 20) -> RequestReader:
    r = RequestReader(max_payload_bytes=MAX_PAYLOAD, max_images=max_images)
    if data:
        r.receive_data(data)
    if eof:
        r.receive_data(b"")
    return r


def error_of(r: RequestReader) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        while r.next_event() is not NEED_DATA:
            pass
    return caught.value


def test_command_names_and_unknown():
    assert [command_name(c) for c in (LOGIN, IMAGE, VIDEO, GET_GLB, LIST)] == [
        "LOGIN", "IMAGE", "VIDEO", "GET_GLB", "LIST"
    ]
    assert command_name(99) == "UNKNOWN"


def test_need_data_reads_as_its_name():
    assert repr(NEED_DATA) == "NEED_DATA"


def test_protocol_error_keeps_its_message_and_leaves_nothing_unread_by_default():
    error = ProtocolError("bad frame", code=ERROR_PAYLOAD_TOO_LARGE, command=IMAGE)
    assert (str(error), error.code, error.command, error.unread) == ("bad frame", ERROR_PAYLOAD_TOO_LARGE, IMAGE, 0)
    assert ProtocolError("x", code="C", command=None, unread=5).unread == 5


def test_misuse_of_the_reader_is_named():
    r = reader(eof=True)
    with pytest.raises(RuntimeError, match="^data received after the end of the stream$"):
        r.receive_data(b"\x01")
    with pytest.raises(RuntimeError, match="^no frame payload to skip$"):
        reader().skip_payload()


@pytest.mark.parametrize("command, limit", [(IMAGE, MAX_PAYLOAD), (VIDEO, MAX_PAYLOAD), (LOGIN, SMALL_PAYLOAD_BYTES)])
def test_a_payload_at_its_limit_is_read_and_one_over_is_refused(command, limit):
    assert reader(header(command, limit)).next_event() == FrameStart(command, limit)
    error = error_of(reader(header(command, limit + 1) + b"abc"))
    assert str(error) == f"declared payload {limit + 1} over the limit {limit}"
    assert (error.code, error.command, error.unread) == (ERROR_PAYLOAD_TOO_LARGE, command, limit + 1 - 3)


def test_an_over_limit_frame_whose_bytes_all_came_leaves_nothing_unread():
    length = SMALL_PAYLOAD_BYTES + 1
    error = error_of(reader(header(LOGIN, length) + bytes(length + 10)))
    assert error.unread == 0


def test_an_unknown_command_is_skipped_up_to_the_limit_and_closed_over_it():
    r = reader(header(42, MAX_PAYLOAD))
    assert r.next_event() == Rejected(42, UNKNOWN_COMMAND)
    error = error_of(reader(header(42, MAX_PAYLOAD + 1)))
    assert (str(error), error.code, error.command) == ("unknown command, payload too large", UNKNOWN_COMMAND, 42)


@pytest.mark.parametrize(
    "data, command",
    [
        (header(LOGIN, 10) + b'{"u"', LOGIN),  # a small frame's payload
        (header(IMAGE, 8) + b"\x00\x00", IMAGE),  # the image count
        (header(IMAGE, 12) + u32(1), IMAGE),  # an image's size
        (header(IMAGE, 12) + u32(1, 4) + b"ab", IMAGE),  # an image's bytes
        (header(VIDEO, 10) + b"abc", VIDEO),
    ],
)
def test_a_stream_ended_inside_a_frame_owes_that_frame_a_reply(data, command):
    error = error_of(reader(data, eof=True))
    assert (str(error), error.code, error.command) == ("stream ended inside a frame", ERROR_INCOMPLETE_REQUEST, command)


def test_the_image_count_may_equal_the_limit_and_not_pass_it():
    payload = u32(2, 1) + b"a" + u32(1) + b"b"
    r = reader(header(IMAGE, len(payload)) + payload, max_images=2)
    assert r.next_event() == FrameStart(IMAGE, len(payload))
    assert r.next_event() == ImageStart(1)
    payload = u32(3) + bytes(12)
    r = reader(header(IMAGE, len(payload)) + payload, max_images=2)
    r.next_event()
    assert r.next_event() == Rejected(IMAGE, ERROR_TOO_MANY_IMAGES)


def test_a_count_whose_size_fields_cannot_fit_is_refused_at_once():
    r = reader(header(IMAGE, 12) + u32(3))  # three images announced, room for two size fields; no more sent yet
    r.next_event()
    assert r.next_event() == Rejected(IMAGE, ERROR_IMAGE_REQUEST)


def test_an_image_must_leave_room_for_the_size_fields_after_it():
    payload = u32(2, 3) + b"abcd"  # the first image's 3 bytes leave 1 byte for the second's 4-byte size
    r = reader(header(IMAGE, len(payload)) + payload)
    r.next_event()
    assert r.next_event() == Rejected(IMAGE, ERROR_IMAGE_REQUEST)
    payload = u32(2, 0) + u32(0)
    r = reader(header(IMAGE, len(payload)) + payload)
    r.next_event()
    assert r.next_event() == ImageStart(0)


def test_a_login_reply_is_not_vip_unless_said():
    assert encode_login(True) == u32(12) + b"[true,false]"


def test_a_reply_name_may_have_1024_bytes_and_not_more():
    assert reconstruction_header("n" * MAX_NAME_BYTES, 5) == u32(MAX_NAME_BYTES) + b"n" * MAX_NAME_BYTES + u32(5)
    with pytest.raises(ValueError, match=f"^reply name must be 1..{MAX_NAME_BYTES} bytes, got {MAX_NAME_BYTES + 1}$"):
        reconstruction_header("n" * (MAX_NAME_BYTES + 1), 5)


def test_a_list_entry_with_an_unencodable_name_is_still_sent():
    reply = encode_list([GlbInfo("h", "bad\ud800name", 3, None)])
    entries = json.loads(reply[4:].decode("utf-8"))
    assert entries == [{"hash": "h", "original_name": "bad?name", "file_size": 3, "created_at": None}]


@pytest.fixture
def tokyo_local_time(monkeypatch):
    """The process's local time zone is UTC+9, so UTC conversions cannot pass by accident."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_list_times_are_utc_whatever_the_zone_of_the_process_and_of_the_time(tokyo_local_time):
    aware = datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    naive = datetime(2024, 5, 1, 12, 30)
    reply = encode_list([GlbInfo("a", "a.glb", 1, aware), GlbInfo("b", "b.glb", 1, naive)])
    assert [e["created_at"] for e in json.loads(reply[4:])] == ["2024-05-01T10:30:00Z", "2024-05-01T12:30:00Z"]
