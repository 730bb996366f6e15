"""Every limit of docs/PROTOCOL.md section 5 that the proxy applies, at the limit, one under and one over.

First the codec (pure: bytes in, events out), then the same limits over real
loopback sockets against a `ProxyServer` with the in-memory backend. The
expected limits are written as numbers here, not read from the code, so a
limit that moves by one fails.
"""

from __future__ import annotations

import asyncio
import json
import struct
from contextlib import asynccontextmanager

import pytest
from proxy_fakes import (
    FakeBackend,
    frame,
    image_payload,
    read_reconstruction,
    read_u32_block,
)
from proxy_serving import (
    FAILED,
    LOGIN_DEMO,
    LOGIN_VIP,
    OK_DEMO,
    OK_VIP,
    async_test,
    connect,
    login,
    read_login_reply,
    request_login,
    serving,
    wait_for,
)

from tcp_proxy import codec
from tcp_proxy.admission import Admission
from tcp_proxy.codec import GET_GLB, IMAGE, LIST, LOGIN, VIDEO
from tcp_proxy.errors import ServiceError
from tcp_proxy.server import start_server
from tcp_proxy.settings import ProxySettings
from clock import Clock

SMALL_CAP = 65536  # docs/PROTOCOL.md: LOGIN, GET_GLB and LIST payloads
APP_MAX_IMAGES = 20  # what the phone app sends at most, frames.max_images' default


def header(command: int, length: int) -> bytes:
    return struct.pack(">BI", command, length)


def first_event(data: bytes, *, max_payload_bytes: int = 1000, max_images: int = APP_MAX_IMAGES):
    reader = codec.RequestReader(max_payload_bytes=max_payload_bytes, max_images=max_images)
    reader.receive_data(data)
    return reader.next_event()


def all_events(data: bytes, *, max_payload_bytes: int = 10**6, max_images: int = APP_MAX_IMAGES) -> list:
    reader = codec.RequestReader(max_payload_bytes=max_payload_bytes, max_images=max_images)
    reader.receive_data(data)
    events = []
    while (event := reader.next_event()) is not codec.NEED_DATA:
        events.append(event)
    return events


def padded_login(size: int) -> bytes:
    """A valid LOGIN payload of demo's, padded with JSON white space to `size` bytes."""
    text = json.dumps({"u": "demo", "p": "123456"}).encode()
    return text + b" " * (size - len(text))


# == codec =====================================================================
@pytest.mark.parametrize("command", [IMAGE, VIDEO])
@pytest.mark.parametrize("length", [999, 1000])
def test_codec_accepts_an_upload_up_to_max_payload_bytes(command, length):
    assert first_event(header(command, length)) == codec.FrameStart(command, length)


@pytest.mark.parametrize("command", [IMAGE, VIDEO])
def test_codec_refuses_an_upload_one_byte_over_max_payload_bytes(command):
    with pytest.raises(codec.ProtocolError) as refused:
        first_event(header(command, 1001))
    assert (refused.value.code, refused.value.command, refused.value.unread) == ("ERROR_PAYLOAD_TOO_LARGE", command, 1001)


@pytest.mark.parametrize("length", [999, 1000])
def test_codec_skips_an_unknown_command_up_to_max_payload_bytes(length):
    assert first_event(header(9, length)) == codec.Rejected(9, "UNKNOWN_COMMAND")


def test_codec_closes_on_an_unknown_command_one_byte_over_max_payload_bytes():
    with pytest.raises(codec.ProtocolError) as refused:
        first_event(header(9, 1001))
    assert (refused.value.code, refused.value.command) == ("UNKNOWN_COMMAND", 9)


@pytest.mark.parametrize("command", [LOGIN, GET_GLB, LIST])
@pytest.mark.parametrize("max_payload_bytes", [100, 10**9])  # the small cap is fixed, whatever the setting
def test_codec_small_frames_are_capped_at_64_kib(command, max_payload_bytes):
    for length in (SMALL_CAP - 1, SMALL_CAP):
        assert first_event(header(command, length), max_payload_bytes=max_payload_bytes) == codec.FrameStart(
            command, length
        )
    with pytest.raises(codec.ProtocolError) as refused:
        first_event(header(command, SMALL_CAP + 1), max_payload_bytes=max_payload_bytes)
    assert (refused.value.code, refused.value.command) == ("ERROR_PAYLOAD_TOO_LARGE", command)


@pytest.mark.parametrize("count", [APP_MAX_IMAGES - 1, APP_MAX_IMAGES])
def test_codec_passes_an_image_count_up_to_max_images(count):
    events = all_events(frame(IMAGE, image_payload([b"p%d" % i for i in range(count)])))
    assert events[-1] == codec.ImagesEnd(count)
    assert sum(isinstance(e, codec.ImageStart) for e in events) == count


def test_codec_refuses_one_image_over_max_images_as_soon_as_the_count_is_read():
    # only the count field arrived: the refusal does not wait for the images
    events = all_events(header(IMAGE, 10_000) + struct.pack(">I", APP_MAX_IMAGES + 1))
    assert events == [codec.FrameStart(IMAGE, 10_000), codec.Rejected(IMAGE, "ERROR_TOO_MANY_IMAGES")]


def test_codec_max_images_is_the_readers_own():
    payload = frame(IMAGE, image_payload([b"a", b"b", b"c"]))
    assert all_events(payload, max_images=3)[-1] == codec.ImagesEnd(3)
    assert all_events(payload, max_images=2)[-1] == codec.Rejected(IMAGE, "ERROR_TOO_MANY_IMAGES")


def test_codec_image_framing_must_add_up_exactly():
    exact = image_payload([b"abc", b"de"])
    assert all_events(frame(IMAGE, exact))[-1] == codec.ImagesEnd(2)
    assert all_events(frame(IMAGE, exact + b"x"))[-1] == codec.Rejected(IMAGE, "ERROR_IMAGE_REQUEST")
    # count x 4 exactly the payload (every image empty) adds up; one size field short does not
    assert all_events(frame(IMAGE, struct.pack(">III", 2, 0, 0)))[-1] == codec.ImagesEnd(2)
    assert all_events(frame(IMAGE, struct.pack(">II", 2, 0) + b"\0\0\0"))[-1] == codec.Rejected(
        IMAGE, "ERROR_IMAGE_REQUEST"
    )
    assert all_events(frame(IMAGE, b"\0\0\0"))[-1] == codec.Rejected(IMAGE, "ERROR_IMAGE_REQUEST")  # under 4 bytes


def test_codec_an_image_size_must_leave_room_for_the_size_fields_after_it():
    # two images, 20 payload bytes: 4 (count) + 4 (size 1) + S + 4 (size 2) + rest; S may be 8 at most
    def framed(first_size: int) -> list:
        body = struct.pack(">II", 2, first_size)
        return all_events(header(IMAGE, 20) + body)

    assert framed(8)[-1] == codec.ImageStart(8)
    assert framed(7)[-1] == codec.ImageStart(7)
    assert framed(9)[-1] == codec.Rejected(IMAGE, "ERROR_IMAGE_REQUEST")


@pytest.mark.parametrize("size", [1, 1023, 1024])
def test_a_reply_name_may_be_up_to_1024_bytes(size):
    assert codec.reconstruction_header("n" * size, 7) == struct.pack(">I", size) + b"n" * size + struct.pack(">I", 7)


@pytest.mark.parametrize("size", [0, 1025])
def test_a_reply_name_of_none_or_over_1024_bytes_is_refused(size):
    with pytest.raises(ValueError):
        codec.reconstruction_header("n" * size, 7)


# == admission =================================================================


@pytest.mark.parametrize("max_pending, admitted", [(2, 2), (3, 3)])
def test_max_pending_admits_exactly_that_many(max_pending, admitted):
    admission = Admission(max_pending=max_pending, max_per_user=10, max_wait_s=60.0)
    slots = [admission.admit(user, 0) for user in range(max_pending + 1)]
    assert [s is not None for s in slots] == [True] * admitted + [False]


def test_max_pending_zero_admits_nothing():
    assert Admission(max_pending=0, max_per_user=10, max_wait_s=60.0).admit(1, 0) is None


def test_max_per_user_admits_exactly_that_many_of_one_user():
    admission = Admission(max_pending=10, max_per_user=2, max_wait_s=60.0)
    assert admission.admit(1) is not None and admission.admit(1) is not None
    assert admission.admit(1) is None
    assert admission.admit(2) is not None  # another user is not affected


@pytest.mark.parametrize(
    "held, announced, admitted", [(0, 99, True), (0, 100, True), (0, 101, False), (60, 40, True), (60, 41, False)]
)
def test_max_upload_bytes_counts_the_held_and_the_new_upload(held, announced, admitted):
    admission = Admission(max_pending=10, max_per_user=10, max_wait_s=60.0, max_upload_bytes=100)
    if held:
        assert admission.admit(1, held) is not None
    assert (admission.admit(2, announced) is not None) is admitted


@pytest.mark.parametrize("max_wait_s, admitted", [(4.999, False), (5.0, True), (5.001, True)])
def test_max_wait_s_refuses_only_a_wait_over_it(max_wait_s, admitted):
    clock = Clock(100.0)
    admission = Admission(max_pending=10, max_per_user=10, max_wait_s=max_wait_s, clock=clock)
    first, second = admission.admit(1), admission.admit(1)
    first.uploaded()
    second.uploaded()
    clock.now += 5.0
    first.release(finished=True)  # pace: 5 s; one queued ahead, so a new request waits 5 s
    assert admission.wait_s(2) == 5.0
    assert (admission.admit(2) is not None) is admitted


# == address bindings ==========================================================
@pytest.mark.parametrize("age_s, bound", [(9.5, True), (10.0, False), (10.5, False)])
def test_an_address_binding_ends_session_ttl_s_after_its_login(age_s, bound):
    from tcp_proxy.backend import User
    from tcp_proxy.sessions import MemorySessionStore

    clock = Clock(100.0)
    store = MemorySessionStore(10.0, clock=clock)
    user = User(1, "demo", False)

    async def bound_after() -> bool:
        await store.bind_address("10.0.0.1", user)
        clock.now += age_s
        return await store.user_at("10.0.0.1") == user

    assert asyncio.run(bound_after()) is bound


# == over real sockets =========================================================
@asynccontextmanager
async def serving_images(max_images: int, backend=None, **overrides):
    """A server like `serving`, with `max_images` of our choosing (the app's 20, say)."""
    settings = ProxySettings(host="127.0.0.1", port=0, **overrides)
    server = await start_server(settings, backend or FakeBackend(), max_images=max_images, port=0)
    try:
        yield server
    finally:
        await server.close()


async def logged_in(server, frame_bytes=LOGIN_DEMO):
    reader, writer = await connect(server)
    assert await login(reader, writer, frame_bytes) in (OK_DEMO, OK_VIP)
    return reader, writer


async def still_in_step(reader, writer) -> None:
    """The connection stays open: its next frame is read and answered."""
    writer.write(LOGIN_DEMO)
    assert await read_login_reply(reader) == OK_DEMO


def one_image_of_payload(size: int) -> bytes:
    """An IMAGE frame whose payload is `size` bytes (one image of size - 8)."""
    return frame(IMAGE, image_payload([b"x" * (size - 8)]))


@async_test
async def test_server_upload_at_and_under_max_payload_bytes_is_reconstructed_over_is_refused_and_closed():
    async with serving(max_payload_bytes=64) as server:
        reader, writer = await logged_in(server)
        for size in (63, 64):
            writer.write(one_image_of_payload(size))
            assert (await read_reconstruction(reader))[0].endswith(".glb")
        writer.write(one_image_of_payload(65))
        assert await read_reconstruction(reader) == ("", b"ERROR_PAYLOAD_TOO_LARGE")
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()


@async_test
async def test_server_video_at_max_payload_bytes_is_accepted_over_is_refused():
    async with serving(max_payload_bytes=64) as server:
        reader, writer = await logged_in(server, LOGIN_VIP)
        writer.write(frame(VIDEO, b"v" * 64))
        assert (await read_reconstruction(reader))[0].endswith(".glb")
        writer.write(frame(VIDEO, b"v" * 65))
        assert await read_reconstruction(reader) == ("", b"ERROR_PAYLOAD_TOO_LARGE")
        writer.close()


@async_test
async def test_server_unknown_command_at_max_payload_bytes_stays_open_over_is_closed():
    async with serving(max_payload_bytes=64) as server:
        reader, writer = await connect(server)
        writer.write(frame(9, b"u" * 64))
        assert await read_u32_block(reader) == b"UNKNOWN_COMMAND"
        await still_in_step(reader, writer)
        writer.write(frame(9, b"u" * 65))
        assert await read_u32_block(reader) == b"UNKNOWN_COMMAND"
        assert await reader.read() == b""
        writer.close()


@async_test
async def test_server_login_of_64_kib_is_answered_one_byte_more_is_refused_and_closed():
    async with serving() as server:
        reader, writer = await connect(server)
        writer.write(frame(LOGIN, padded_login(SMALL_CAP)))
        assert await read_login_reply(reader) == OK_DEMO
        writer.write(frame(LOGIN, padded_login(SMALL_CAP + 1)))
        assert await read_login_reply(reader) == FAILED
        assert await reader.read() == b""
        writer.close()


@async_test
async def test_server_get_glb_and_list_of_64_kib_are_answered_one_byte_more_is_refused_and_closed():
    async with serving() as server:
        for command, at_limit_reply in ((GET_GLB, b"ERROR_HASH_NOT_FOUND"), (LIST, b"[]")):
            reader, writer = await logged_in(server)
            writer.write(frame(command, b"a" * 64 + b" " * (SMALL_CAP - 64)))
            assert await read_u32_block(reader) == at_limit_reply
            await still_in_step(reader, writer)
            writer.write(frame(command, b" " * (SMALL_CAP + 1)))
            assert await read_u32_block(reader) == b"ERROR_PAYLOAD_TOO_LARGE"
            assert await reader.read() == b""
            writer.close()


@async_test
async def test_server_takes_exactly_the_apps_twenty_photos_and_refuses_twenty_one():
    async with serving_images(APP_MAX_IMAGES) as server:
        reader, writer = await logged_in(server)
        for count in (APP_MAX_IMAGES - 1, APP_MAX_IMAGES):
            writer.write(frame(IMAGE, image_payload([b"photo %d" % i for i in range(count)])))
            assert (await read_reconstruction(reader))[0].endswith(".glb"), count
        writer.write(frame(IMAGE, image_payload([b"photo %d" % i for i in range(APP_MAX_IMAGES + 1)])))
        assert await read_reconstruction(reader) == ("", b"ERROR_TOO_MANY_IMAGES")
        await still_in_step(reader, writer)
        writer.close()


@async_test
async def test_server_upload_bytes_in_flight_admits_a_payload_at_the_limit_and_refuses_one_over():
    # one request alone: its declared payload against proxy.max_upload_bytes_in_flight
    async with serving(max_upload_bytes_in_flight=100, max_payload_bytes=1000) as server:
        reader, writer = await logged_in(server)
        for size in (99, 100):
            writer.write(one_image_of_payload(size))
            assert (await read_reconstruction(reader))[0].endswith(".glb"), size
        writer.write(one_image_of_payload(101))
        assert await read_reconstruction(reader) == ("", b"ERROR_BUSY")
        await still_in_step(reader, writer)
        writer.close()


@async_test
async def test_server_upload_bytes_in_flight_sums_the_pending_payloads():
    backend = FakeBackend()
    backend.gate = asyncio.Event()
    async with serving(backend, max_upload_bytes_in_flight=100, max_payload_bytes=1000) as server:
        held_reader, held_writer = await logged_in(server)
        held_writer.write(one_image_of_payload(60))  # held by the backend: 60 bytes in flight
        await wait_for(lambda: backend.started == 1)
        reader, writer = await logged_in(server, LOGIN_VIP)
        writer.write(one_image_of_payload(41))
        assert await read_reconstruction(reader) == ("", b"ERROR_BUSY")
        writer.write(one_image_of_payload(40))
        await wait_for(lambda: backend.started == 2)
        backend.gate.set()
        assert (await read_reconstruction(reader))[0].endswith(".glb")
        assert (await read_reconstruction(held_reader))[0].endswith(".glb")
        writer.close()
        held_writer.close()


@async_test
async def test_server_pending_reconstructions_admits_exactly_the_limit():
    backend = FakeBackend()
    backend.gate = asyncio.Event()
    async with serving(backend, max_pending_reconstructions=2, max_pending_per_user=10) as server:
        held = []
        for i in range(2):
            reader, writer = await logged_in(server)
            writer.write(frame(IMAGE, image_payload([b"held %d" % i])))
            held.append((reader, writer))
        await wait_for(lambda: backend.started == 2)
        reader, writer = await logged_in(server, LOGIN_VIP)
        writer.write(frame(IMAGE, image_payload([b"third"])))
        assert await read_reconstruction(reader) == ("", b"ERROR_BUSY")
        backend.gate.set()
        for held_reader, held_writer in held:
            assert (await read_reconstruction(held_reader))[0].endswith(".glb")
            held_writer.close()
        writer.close()


@async_test
async def test_server_pending_per_user_admits_exactly_the_limit_of_one_user():
    backend = FakeBackend()
    backend.gate = asyncio.Event()
    async with serving(backend, max_pending_per_user=2) as server:
        held = []
        for i in range(2):
            reader, writer = await logged_in(server)
            writer.write(frame(IMAGE, image_payload([b"held %d" % i])))
            held.append((reader, writer))
        await wait_for(lambda: backend.started == 2)
        reader, writer = await logged_in(server)
        writer.write(frame(IMAGE, image_payload([b"third"])))
        assert await read_reconstruction(reader) == ("", b"ERROR_BUSY")
        vip_reader, vip_writer = await logged_in(server, LOGIN_VIP)
        vip_writer.write(frame(IMAGE, image_payload([b"other user"])))
        await wait_for(lambda: backend.started == 3)
        backend.gate.set()
        assert (await read_reconstruction(vip_reader))[0].endswith(".glb")
        for held_reader, held_writer in held:
            assert (await read_reconstruction(held_reader))[0].endswith(".glb")
            held_writer.close()
        writer.close()
        vip_writer.close()


@async_test
async def test_server_result_at_max_result_bytes_is_sent_one_byte_over_is_refused():
    # the fake's GLB is b"glTF" + the upload's first 64 bytes: an image of k bytes gives 4 + k
    async with serving(max_result_bytes=40) as server:
        reader, writer = await logged_in(server)
        names = {}
        for image_size, expected in ((35, "ok"), (36, "ok"), (37, "ERROR_RESULT_TOO_LARGE")):
            writer.write(frame(IMAGE, image_payload([b"r" * image_size])))
            name, data = await read_reconstruction(reader)
            assert (name.endswith(".glb") and len(data) == 4 + image_size) if expected == "ok" else (name, data) == (
                "",
                expected.encode(),
            )
        for digest, glb in server.backend.stored.items():
            names[len(glb)] = digest
        for size in (39, 40):
            writer.write(frame(GET_GLB, names[size].encode()))
            assert len(await read_u32_block(reader)) == size
        writer.write(frame(GET_GLB, names[41].encode()))
        assert await read_u32_block(reader) == b"ERROR_RESULT_TOO_LARGE"
        writer.close()


class ListAllBackend(FakeBackend):
    """Lists every GLB of the user, whatever limit it is asked for (the server must cut the list)."""

    async def list_glbs(self, user, limit):
        return await super().list_glbs(user, 10**6)


@pytest.mark.parametrize("list_limit, listed", [(2, 2), (3, 3), (4, 3)])
def test_server_list_answers_at_most_list_limit(list_limit, listed):
    @async_test
    async def run():
        async with serving(ListAllBackend(), list_limit=list_limit) as server:
            reader, writer = await logged_in(server)
            for i in range(3):
                writer.write(frame(IMAGE, image_payload([b"listed %d" % i])))
                await read_reconstruction(reader)
            writer.write(frame(LIST, b""))
            assert len(json.loads(await read_u32_block(reader))) == listed
            writer.close()

    run()


@async_test
async def test_server_downloads_in_all_and_per_address_are_capped_exactly():
    async with serving(max_downloads=3, max_downloads_per_address=2) as server:
        assert server.acquire_download("10.0.0.1") and server.acquire_download("10.0.0.1")
        assert not server.acquire_download("10.0.0.1")  # per address: at 2, the third is refused
        assert server.acquire_download("10.0.0.2")  # the third in all
        assert not server.acquire_download("10.0.0.3")  # over max_downloads
        server.release_download("10.0.0.1")
        assert server.acquire_download("10.0.0.3")


@pytest.mark.parametrize("length, sent", [(63, True), (64, True), (65, False)])
def test_server_error_codes_up_to_64_bytes_are_sent_longer_ones_become_internal(length, sent):
    code = "ERROR_" + "X" * (length - 6)

    @async_test
    async def run():
        backend = FakeBackend()
        backend.fail = type("OddError", (ServiceError,), {"code": code})()
        async with serving(backend) as server:
            reader, writer = await logged_in(server)
            writer.write(frame(IMAGE, image_payload([b"fails"])))
            assert await read_reconstruction(reader) == ("", (code if sent else "ERROR_INTERNAL").encode())
            writer.close()

    run()


# -- connections, overflow and discards ----------------------------------------
async def silent_connections(server, count: int, attribute: str) -> list:
    """`count` connections that send nothing; returns once the server holds them all."""
    before = getattr(server, attribute).in_use
    held = [await connect(server) for _ in range(count)]
    await wait_for(lambda: getattr(server, attribute).in_use == before + count)
    return held


async def closed_without_reply(reader) -> bool:
    """True when the server closed the connection without a byte of reply (EOF or a reset)."""
    try:
        return await reader.read() == b""
    except ConnectionResetError:
        return True


@async_test
async def test_server_max_connections_admits_exactly_the_limit():
    async with serving(max_connections=3) as server:
        held = await silent_connections(server, 2, "connections")
        third = await connect(server)  # at the limit
        assert await login(*third) == OK_DEMO
        assert server.active_connections == 3
        assert await request_login(server) == FAILED  # the fourth: ERROR_BUSY in LOGIN's shape
        for _, writer in held + [third]:
            writer.close()


@async_test
async def test_server_max_connections_per_address_admits_exactly_the_limit():
    async with serving(max_connections_per_address=3) as server:
        held = await silent_connections(server, 2, "connections")
        third = await connect(server)
        assert await login(*third) == OK_DEMO
        assert await request_login(server) == FAILED
        other = await asyncio.open_connection("127.0.0.1", server.port, local_addr=("127.0.0.2", 0))
        assert await login(*other) == OK_DEMO  # another address has its own count
        for _, writer in held + [third, other]:
            writer.close()


@pytest.mark.parametrize("max_connections, overflow", [(1, 16), (15, 16), (17, 17)])
def test_server_overflow_answers_max_of_max_connections_and_16_more_and_closes_the_rest(max_connections, overflow):
    """Over max_connections, max(max_connections, 16) connections are answered ERROR_BUSY; beyond those,
    a connection is closed at once without a reply."""

    @async_test
    async def run():
        async with serving(max_connections=max_connections, read_timeout_s=30) as server:
            held = await silent_connections(server, max_connections, "connections")
            refused = await silent_connections(server, overflow, "overflow")
            reader, writer = await connect(server)  # one beyond the overflow
            writer.write(LOGIN_DEMO)
            assert await closed_without_reply(reader)
            assert server.overflow.in_use == overflow
            last_reader, last_writer = refused[-1]  # the last one within the overflow is answered
            last_writer.write(LOGIN_DEMO)
            assert await read_login_reply(last_reader) == FAILED
            for _, w in held + refused + [(reader, writer)]:
                w.close()

    run()


@async_test
async def test_server_over_the_per_address_cap_takes_an_overflow_slot():
    async with serving(max_connections=2, max_connections_per_address=1, read_timeout_s=30) as server:
        held = await silent_connections(server, 1, "connections")
        refused = await silent_connections(server, 16, "overflow")  # max(2, 16)
        reader, writer = await connect(server)
        writer.write(LOGIN_DEMO)
        assert await closed_without_reply(reader)
        for _, w in held + refused + [(reader, writer)]:
            w.close()


DISCARD = {"max_payload_bytes": 64, "max_discard_bytes": 1000, "max_discard_s": 60, "read_timeout_s": 60}


async def refused_upload(server):
    """A connection whose IMAGE header announced 10**6 bytes and was answered; nothing of its body sent."""
    reader, writer = await logged_in(server)
    writer.write(header(IMAGE, 10**6))
    assert await read_reconstruction(reader) == ("", b"ERROR_PAYLOAD_TOO_LARGE")
    return reader, writer


@async_test
async def test_server_discards_exactly_max_discard_bytes_of_an_over_limit_upload_then_closes():
    async with serving(**DISCARD) as server:
        _, writer = await refused_upload(server)
        writer.write(b"d" * 999)
        await writer.drain()
        # one byte short of the bound: still discarding (only the bound can end it this soon; the
        # silence, rate and time bounds are all a minute away)
        await asyncio.sleep(0.5)
        assert server.active_connections == 1
        writer.write(b"d")
        await wait_for(lambda: server.active_connections == 0, timeout=5.0)
        writer.close()


@async_test
async def test_server_stops_discarding_at_max_discard_bytes_when_more_is_sent():
    async with serving(**DISCARD) as server:
        _, writer = await refused_upload(server)
        writer.write(b"d" * 1001)
        await wait_for(lambda: server.active_connections == 0, timeout=5.0)
        writer.close()
