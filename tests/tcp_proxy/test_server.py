"""The asyncio server over real loopback sockets, with an in-memory backend."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import struct
from contextlib import asynccontextmanager, suppress

from proxy_fakes import (
    FakeBackend,
    frame,
    image_payload,
    login_payload,
    read_reconstruction,
    read_u32_block,
)

from tcp_proxy.backend import BytesDownload
from tcp_proxy.settings import ProxySettings
from tcp_proxy.errors import BadImageError
from tcp_proxy.codec import GET_GLB, IMAGE, LIST, LOGIN, VIDEO
from tcp_proxy.server import start_server

OK_DEMO = b"\x00\x00\x00\x0c[true,false]"
OK_VIP = b"\x00\x00\x00\x0b[true,true]"
FAILED = b"\x00\x00\x00\x0d[false,false]"
LOGIN_DEMO = frame(LOGIN, login_payload("demo", "123456"))
LOGIN_VIP = frame(LOGIN, login_payload("vip", "gold"))
IMAGE_FRAME = frame(IMAGE, image_payload([b"one", b"two"]))


def async_test(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 20))

    return wrapper


@asynccontextmanager
async def serving(backend=None, **overrides):
    settings = ProxySettings(host="127.0.0.1", port=0, **overrides)
    records = []
    server = await start_server(settings, backend or FakeBackend(), max_images=5, port=0, on_request=records.append)
    server.records = records
    try:
        yield server
    finally:
        await server.close()


async def connect(server):
    return await asyncio.open_connection("127.0.0.1", server.port)


async def login(reader, writer, frame_bytes=LOGIN_DEMO) -> bytes:
    writer.write(frame_bytes)
    return await _peek_len(reader)


async def _peek_len(reader):
    """A whole `u32 length` + body reply, length included (LOGIN replies)."""
    head = await reader.readexactly(4)
    (n,) = struct.unpack(">I", head)
    return head + await reader.readexactly(n)


async def request_login(server, frame_bytes=LOGIN_DEMO) -> bytes:
    reader, writer = await connect(server)
    writer.write(frame_bytes)
    reply = await _peek_len(reader)
    writer.close()
    return reply


async def one_shot(server, data: bytes, reconstruction=True):
    """One connection per request, as the Android app does."""
    reader, writer = await connect(server)
    writer.write(data)
    reply = await read_reconstruction(reader) if reconstruction else await read_u32_block(reader)
    writer.close()
    return reply


def spooled_files(spool_dir) -> list:
    """Upload files under the spool dir (each server keeps them in a folder of its own there)."""
    return [p for p in spool_dir.rglob("*") if p.is_file()]


async def wait_for(predicate, timeout=5.0):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


# -- sessions and commands -------------------------------------------------
@async_test
async def test_many_requests_on_one_connection_answered_in_order():
    async with serving() as server:
        reader, writer = await connect(server)
        writer.write(LOGIN_DEMO + IMAGE_FRAME + frame(GET_GLB, b"0" * 64) + frame(IMAGE, image_payload([b"x"])))
        assert await _peek_len(reader) == OK_DEMO
        name1, glb1 = await read_reconstruction(reader)
        assert len(name1) == 68 and name1.endswith(".glb") and glb1.startswith(b"glTF")
        assert await read_u32_block(reader) == b"ERROR_HASH_NOT_FOUND"
        name2, _ = await read_reconstruction(reader)
        assert name2 != name1
        writer.write(frame(GET_GLB, b" " + name1.encode() + b"\n"))
        assert await read_u32_block(reader) == glb1
        writer.close()
        await wait_for(lambda: len(server.records) == 5)
        assert [r.command for r in server.records] == ["LOGIN", "IMAGE", "GET_GLB", "IMAGE", "GET_GLB"]
        assert server.records[1].user == "demo" and server.records[1].outcome == "OK"
        assert server.records[1].bytes_in == len(IMAGE_FRAME)
        assert server.records[1].bytes_out == 8 + 68 + len(glb1)
        assert "model" in server.records[1].timings and "backend" in server.records[1].timings


@async_test
async def test_one_connection_per_request_uses_the_address_binding():
    async with serving() as server:
        assert await request_login(server) == OK_DEMO
        name, glb = await one_shot(server, IMAGE_FRAME)
        assert name.endswith(".glb")
        assert server.records[-1].user == "demo"
        # anyone with the hash can fetch it, no login needed (binding aside)
        assert await one_shot(server, frame(GET_GLB, name.encode()), reconstruction=False) == glb


@async_test
async def test_without_address_binding_each_connection_must_log_in():
    async with serving(bind_sessions_to_ip=False) as server:
        assert await request_login(server) == OK_DEMO
        assert await one_shot(server, IMAGE_FRAME) == ("", b"ERROR_NOT_LOGGED_IN")


@async_test
async def test_not_logged_in():
    async with serving() as server:
        assert await one_shot(server, IMAGE_FRAME) == ("", b"ERROR_NOT_LOGGED_IN")
        assert await one_shot(server, frame(VIDEO, b"movie")) == ("", b"ERROR_NOT_LOGGED_IN")


@async_test
async def test_list_recovers_results_whose_reply_was_lost():
    backend = FakeBackend()
    backend.gate = asyncio.Event()
    async with serving(backend, list_limit=2) as server:
        assert await one_shot(server, frame(LIST, b""), reconstruction=False) == b"ERROR_NOT_LOGGED_IN"
        assert await request_login(server) == OK_DEMO
        assert json.loads(await one_shot(server, frame(LIST, b""), reconstruction=False)) == []
        for payload in (b"first", b"second", b"third"):  # the client hangs up before each reply
            reader, writer = await connect(server)
            writer.write(frame(IMAGE, image_payload([payload])))
            await wait_for(lambda: backend.started == len(backend.owners) + 1)
            writer.close()
            backend.gate.set()
            await wait_for(lambda: server.pending_reconstructions == 0)
            backend.gate.clear()
        listed = json.loads(await one_shot(server, frame(LIST, b""), reconstruction=False))
        newest_first = list(reversed(backend.stored))[:2]
        assert [entry["hash"] for entry in listed] == newest_first  # at most list_limit, newest first
        assert set(listed[0]) == {"hash", "original_name", "file_size", "created_at"}
        await wait_for(lambda: len([r for r in server.records if r.command == "LIST"]) == 3)
        assert [r.user for r in server.records if r.command == "LIST"] == [None, "demo", "demo"]
        assert [r.outcome for r in server.records if r.command == "IMAGE"] == ["DISCONNECTED"] * 3


@async_test
async def test_list_only_shows_the_users_own_results():
    async with serving() as server:
        reader, writer = await connect(server)
        writer.write(LOGIN_VIP + IMAGE_FRAME)
        assert await _peek_len(reader) == OK_VIP
        name, _ = await read_reconstruction(reader)
        writer.write(frame(LIST, b""))
        assert [e["hash"] for e in json.loads(await read_u32_block(reader))] == [name[:-4]]
        writer.write(LOGIN_DEMO + frame(LIST, b""))
        assert await _peek_len(reader) == OK_DEMO
        assert json.loads(await read_u32_block(reader)) == []
        writer.close()


@async_test
async def test_expired_binding_is_not_logged_in():
    async with serving(session_ttl_s=0.05) as server:
        assert await request_login(server) == OK_DEMO
        await asyncio.sleep(0.1)
        assert await one_shot(server, IMAGE_FRAME) == ("", b"ERROR_NOT_LOGGED_IN")


@async_test
async def test_failed_login_keeps_the_earlier_binding(caplog):
    caplog.set_level(logging.INFO, logger="tcp_proxy")
    async with serving() as server:
        assert await request_login(server) == OK_DEMO
        assert await request_login(server, frame(LOGIN, login_payload("demo", "wrong"))) == FAILED
        assert await request_login(server, frame(LOGIN, b"{not json")) == FAILED
        assert (await one_shot(server, IMAGE_FRAME))[0].endswith(".glb")
        await wait_for(lambda: len(server.records) == 4)
        assert [r.outcome for r in server.records] == ["OK", "LOGIN_FAILED", "LOGIN_FAILED", "OK"]
    assert "123456" not in caplog.text and "wrong" not in caplog.text


@async_test
async def test_video_requires_vip(tmp_path):
    backend = FakeBackend()
    async with serving(backend, spool_dir=str(tmp_path)) as server:
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        writer.write(frame(VIDEO, b"movie" * 100))
        assert await read_reconstruction(reader) == ("", b"ERROR_VIP_REQUIRED")
        assert await login(reader, writer, LOGIN_VIP) == OK_VIP
        writer.write(frame(VIDEO, b"movie" * 100_000))
        name, glb = await read_reconstruction(reader)
        assert name.endswith(".glb") and glb == b"glTF" + (b"movie" * 13)[:64]
        assert spooled_files(tmp_path) == []  # gone before the reply, not only at disconnect
        writer.close()
    assert backend.video_existed == [True]
    assert os.path.dirname(os.path.dirname(backend.video_paths[0])) == str(tmp_path)  # its own folder there
    assert spooled_files(tmp_path) == []


@async_test
async def test_video_for_everyone_when_not_required(tmp_path):
    async with serving(require_vip_for_video=False, spool_dir=str(tmp_path)) as server:
        assert await request_login(server) == OK_DEMO
        assert (await one_shot(server, frame(VIDEO, b"clip")))[0].endswith(".glb")
    assert spooled_files(tmp_path) == []


# -- limits ----------------------------------------------------------------
@async_test
async def test_payload_over_limit_is_answered_from_the_header():
    async with serving(max_payload_bytes=1000) as server:
        assert await request_login(server, LOGIN_VIP) == OK_VIP
        reader, writer = await connect(server)
        writer.write(struct.pack(">BI", VIDEO, 10**6))  # header only, no body
        assert await read_reconstruction(reader) == ("", b"ERROR_PAYLOAD_TOO_LARGE")
        assert await reader.read() == b""  # then closed
        writer.close()
        reader, writer = await connect(server)
        writer.write(struct.pack(">BI", LOGIN, 10**6))
        assert await _peek_len(reader) == FAILED


@async_test
async def test_too_many_images_and_bad_framing():
    async with serving() as server:
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        writer.write(frame(IMAGE, image_payload([b"i"] * 6)))
        assert await read_reconstruction(reader) == ("", b"ERROR_TOO_MANY_IMAGES")
        writer.write(frame(IMAGE, image_payload([b"abc"]) + b"extra"))
        assert await read_reconstruction(reader) == ("", b"ERROR_IMAGE_REQUEST")
        writer.write(IMAGE_FRAME)  # the connection is still in step
        assert (await read_reconstruction(reader))[0].endswith(".glb")
        writer.close()


@async_test
async def test_client_closing_mid_upload_leaves_no_spool_file(tmp_path):
    async with serving(spool_dir=str(tmp_path)) as server:
        assert await request_login(server, LOGIN_VIP) == OK_VIP
        reader, writer = await connect(server)
        writer.write(struct.pack(">BI", VIDEO, 5_000_000) + b"v" * 2_000_000)
        await writer.drain()
        await wait_for(lambda: spooled_files(tmp_path))
        writer.close()
        await wait_for(lambda: server.active_connections == 0)
        assert spooled_files(tmp_path) == []
        # half-closed: the client can still read the error
        reader, writer = await connect(server)
        writer.write(struct.pack(">BI", VIDEO, 1000) + b"v" * 10)
        writer.write_eof()
        assert await read_reconstruction(reader) == ("", b"ERROR_INCOMPLETE_REQUEST")
        writer.close()
        await wait_for(lambda: server.active_connections == 0)
        assert spooled_files(tmp_path) == []
        assert (await one_shot(server, frame(VIDEO, b"fine")))[0].endswith(".glb")


@async_test
async def test_slow_sender_is_answered_and_closed(tmp_path):
    async with serving(read_timeout_s=0.2, spool_dir=str(tmp_path)) as server:
        assert await request_login(server, LOGIN_VIP) == OK_VIP
        reader, writer = await connect(server)
        writer.write(struct.pack(">BI", VIDEO, 100) + b"v" * 10)
        assert await read_reconstruction(reader) == ("", b"ERROR_READ_TIMEOUT")
        assert await reader.read() == b""
        writer.close()
        reader, writer = await connect(server)
        writer.write(b"\x04\x00")  # inside a header
        assert await read_u32_block(reader) == b"ERROR_READ_TIMEOUT"
        writer.close()
        await wait_for(lambda: server.active_connections == 0)
        assert spooled_files(tmp_path) == []


@async_test
async def test_idle_connection_is_closed_without_reply():
    async with serving(idle_timeout_s=0.2, read_timeout_s=0.05) as server:
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        assert await reader.read() == b""
        writer.close()


@async_test
async def test_computing_is_never_timed_out():
    backend = FakeBackend()
    backend.gate = asyncio.Event()
    async with serving(backend, read_timeout_s=0.05, idle_timeout_s=0.05) as server:
        reader, writer = await connect(server)
        writer.write(LOGIN_DEMO + IMAGE_FRAME)
        assert await _peek_len(reader) == OK_DEMO
        await asyncio.sleep(0.3)
        backend.gate.set()
        assert (await read_reconstruction(reader))[0].endswith(".glb")
        writer.close()


@async_test
async def test_garbage_bytes():
    async with serving() as server:
        reader, writer = await connect(server)
        writer.write(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        assert await read_u32_block(reader) == b"UNKNOWN_COMMAND"
        assert await reader.read() == b""  # "ET /" is far over the length limit
        writer.close()
        assert await request_login(server) == OK_DEMO


@async_test
async def test_unknown_command_keeps_the_connection():
    async with serving() as server:
        reader, writer = await connect(server)
        writer.write(frame(9, b"whatever") + LOGIN_DEMO)
        assert await read_u32_block(reader) == b"UNKNOWN_COMMAND"
        assert await _peek_len(reader) == OK_DEMO
        writer.close()
        await wait_for(lambda: len(server.records) == 2)
        assert server.records[0].command == "UNKNOWN" and server.records[0].outcome == "UNKNOWN_COMMAND"


@async_test
async def test_busy_when_reconstruction_queue_is_full(tmp_path):
    backend = FakeBackend()
    backend.gate = asyncio.Event()
    async with serving(backend, max_pending_reconstructions=2, spool_dir=str(tmp_path)) as server:
        assert await request_login(server, LOGIN_VIP) == OK_VIP
        waiting = [asyncio.create_task(one_shot(server, frame(IMAGE, image_payload([bytes([i])])))) for i in range(2)]
        await wait_for(lambda: backend.started == 2)
        assert server.pending_reconstructions == 2
        assert await one_shot(server, IMAGE_FRAME) == ("", b"ERROR_BUSY")
        assert await one_shot(server, frame(VIDEO, b"clip")) == ("", b"ERROR_BUSY")
        assert await one_shot(server, frame(GET_GLB, b"f" * 64), reconstruction=False) == b"ERROR_HASH_NOT_FOUND"
        backend.gate.set()
        for result in await asyncio.gather(*waiting):
            assert result[0].endswith(".glb")
        assert server.pending_reconstructions == 0
        assert server.stats()["pending_reconstructions"] == 0
    assert spooled_files(tmp_path) == []


@async_test
async def test_one_user_cannot_take_every_slot():
    backend = FakeBackend()
    backend.gate = asyncio.Event()
    async with serving(backend, max_pending_reconstructions=8, max_pending_per_user=2) as server:
        assert await request_login(server, LOGIN_DEMO) == OK_DEMO
        demo = [asyncio.create_task(one_shot(server, frame(IMAGE, image_payload([bytes([i])])))) for i in range(2)]
        await wait_for(lambda: backend.started == 2)
        assert await one_shot(server, IMAGE_FRAME) == ("", b"ERROR_BUSY")  # demo's third
        vip_reader, vip_writer = await connect(server)
        assert await login(vip_reader, vip_writer, LOGIN_VIP) == OK_VIP
        vip_writer.write(IMAGE_FRAME)  # another user still gets in
        await wait_for(lambda: backend.started == 3)
        backend.gate.set()
        assert (await read_reconstruction(vip_reader))[0].endswith(".glb")
        vip_writer.close()
        assert all(result[0].endswith(".glb") for result in await asyncio.gather(*demo))
        assert server.pending_reconstructions == 0


@async_test
async def test_the_slot_is_taken_at_the_header_before_the_upload():
    async with serving(max_pending_reconstructions=1) as server:
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        writer.write(IMAGE_FRAME[:12])  # header and part of the payload: the upload is under way
        await wait_for(lambda: server.pending_reconstructions == 1)
        vip_reader, vip_writer = await connect(server)
        assert await login(vip_reader, vip_writer, LOGIN_VIP) == OK_VIP
        vip_writer.write(IMAGE_FRAME)
        assert await read_reconstruction(vip_reader) == ("", b"ERROR_BUSY")
        vip_writer.close()
        writer.write(IMAGE_FRAME[12:])
        assert (await read_reconstruction(reader))[0].endswith(".glb")
        writer.close()
        await wait_for(lambda: server.pending_reconstructions == 0)


@async_test
async def test_a_dropped_upload_gives_its_slot_back():
    async with serving(max_pending_reconstructions=1) as server:
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        writer.write(IMAGE_FRAME[:12])
        await wait_for(lambda: server.pending_reconstructions == 1)
        writer.transport.abort()
        await wait_for(lambda: server.pending_reconstructions == 0)
        assert (await one_shot(server, IMAGE_FRAME))[0].endswith(".glb")


@async_test
async def test_refused_when_the_estimated_wait_is_over_the_limit():
    """The backend has been finishing one reconstruction per ~0.3 s: with two ahead a new one would
    wait ~0.6 s, over max_wait_s=0.5, so it is refused although max_pending (32) is far off."""
    backend = FakeBackend()
    backend.gate = asyncio.Event()
    async with serving(backend, max_wait_s=0.5) as server:
        assert await request_login(server, LOGIN_VIP) == OK_VIP
        first = asyncio.create_task(one_shot(server, frame(IMAGE, image_payload([b"pace"]))))
        await wait_for(lambda: backend.started == 1)
        await asyncio.sleep(0.3)
        backend.gate.set()
        assert (await first)[0].endswith(".glb")
        assert server.admission.estimate.interval_s >= 0.3
        backend.gate.clear()
        held = [asyncio.create_task(one_shot(server, frame(IMAGE, image_payload([bytes([i])])))) for i in range(2)]
        await wait_for(lambda: backend.started == 3)  # one ahead: ~0.3 s, admitted
        assert server.stats()["estimated_wait_s"] >= 0.6
        assert await one_shot(server, IMAGE_FRAME) == ("", b"ERROR_BUSY")
        backend.gate.set()
        assert all(result[0].endswith(".glb") for result in await asyncio.gather(*held))


@async_test
async def test_busy_when_connection_limit_is_reached():
    async with serving(max_connections=1) as server:
        reader1, writer1 = await connect(server)
        assert await login(reader1, writer1) == OK_DEMO
        assert server.active_connections == 1
        assert await one_shot(server, IMAGE_FRAME) == ("", b"ERROR_BUSY")
        assert await request_login(server) == FAILED
        writer1.write(IMAGE_FRAME)  # the admitted connection is unaffected
        assert (await read_reconstruction(reader1))[0].endswith(".glb")
        writer1.close()


@async_test
async def test_twenty_concurrent_clients():
    async with serving(max_pending_per_user=20) as server:  # all twenty log in as demo

        async def client(i):
            reader, writer = await connect(server)
            assert await login(reader, writer) == OK_DEMO
            writer.write(frame(IMAGE, image_payload([b"img%d" % i, b"x" * 1000])))
            name, glb = await read_reconstruction(reader)
            writer.write(frame(GET_GLB, name.encode()))
            assert await read_u32_block(reader) == glb
            writer.close()
            return name

        names = await asyncio.gather(*(client(i) for i in range(20)))
        assert len(set(names)) == 20


@async_test
async def test_backend_errors(caplog):
    backend = FakeBackend()
    async with serving(backend) as server:
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        backend.fail = BadImageError("cannot decode image 2")
        writer.write(IMAGE_FRAME)
        assert await read_reconstruction(reader) == ("", b"ERROR_BAD_IMAGE")
        backend.fail = RuntimeError("boom")
        writer.write(IMAGE_FRAME)
        assert await read_reconstruction(reader) == ("", b"ERROR_INTERNAL")
        backend.fail = None
        writer.write(IMAGE_FRAME)  # still usable
        assert (await read_reconstruction(reader))[0].endswith(".glb")
        writer.close()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "boom" in str(tracebacks[0].exc_info[1])


@async_test
async def test_client_gone_during_reconstruction():
    backend = FakeBackend()
    backend.gate = asyncio.Event()
    async with serving(backend) as server:
        reader, writer = await connect(server)
        writer.write(LOGIN_DEMO + IMAGE_FRAME)
        assert await _peek_len(reader) == OK_DEMO
        await wait_for(lambda: backend.started == 1)
        writer.close()
        await asyncio.sleep(0.05)
        backend.gate.set()
        await wait_for(lambda: server.active_connections == 0)
        assert len(backend.stored) == 1  # stored and reachable by its hash
        (digest,) = backend.stored
        assert await one_shot(server, frame(GET_GLB, digest.encode()), reconstruction=False) == backend.stored[digest]
        assert server.pending_reconstructions == 0


@async_test
async def test_spool_write_failure_is_internal_and_leaves_no_file(tmp_path, monkeypatch):
    from tcp_proxy.spool import Spool

    def disk_full(self, parts):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Spool, "_write_all", disk_full)
    async with serving(spool_dir=str(tmp_path)) as server:
        reader, writer = await connect(server)
        assert await login(reader, writer, LOGIN_VIP) == OK_VIP
        writer.write(frame(VIDEO, b"v" * 3_000_000) + frame(VIDEO, b"small") + LOGIN_VIP)
        assert await read_reconstruction(reader) == ("", b"ERROR_INTERNAL")  # failed mid-upload
        assert await read_reconstruction(reader) == ("", b"ERROR_INTERNAL")  # failed at the end
        assert await _peek_len(reader) == OK_VIP  # still in step
        writer.close()
    assert spooled_files(tmp_path) == []


@async_test
async def test_random_garbage_never_hurts_the_server():
    import random

    rng = random.Random(7)
    async with serving(read_timeout_s=0.2, max_payload_bytes=4096) as server:
        for _ in range(25):
            reader, writer = await connect(server)
            writer.write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
            writer.write_eof()
            await asyncio.wait_for(reader.read(), 2)  # whatever it answers, it then closes
            writer.close()
        assert await request_login(server) == OK_DEMO
        await wait_for(lambda: server.active_connections == 0)


@async_test
async def test_user_text_cannot_forge_or_flood_log_lines(caplog):
    caplog.set_level(logging.INFO, logger="tcp_proxy")
    forged = 'x\nrequest peer=10.0.0.1 user=admin command=LOGIN outcome=OK' + "y" * 60_000
    async with serving() as server:
        payload = json.dumps({"u": forged, "p": "pw"}).encode()
        assert await request_login(server, frame(LOGIN, payload)) == FAILED
        await wait_for(lambda: len(server.records) == 1)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("request ")]
    assert len(lines) == 1 and "\n" not in lines[0] and len(lines[0]) < 400
    assert "user=x\\nrequest peer=" in lines[0] and lines[0].count("user=") == 2  # escaped, inside one line


@async_test
async def test_a_result_over_max_result_bytes_is_refused(tmp_path):
    async with serving(max_result_bytes=40) as server:
        assert await request_login(server) == OK_DEMO
        big_upload = frame(IMAGE, image_payload([b"z" * 100]))
        assert await one_shot(server, big_upload) == ("", b"ERROR_RESULT_TOO_LARGE")  # b"glTF" + 64 bytes
        small = await one_shot(server, frame(IMAGE, image_payload([b"s"])))
        assert small[0].endswith(".glb")
        big = next(name for name, glb in server.backend.stored.items() if len(glb) > 40)
        assert await one_shot(server, frame(GET_GLB, big.encode()), reconstruction=False) == b"ERROR_RESULT_TOO_LARGE"


# -- slow and greedy clients ---------------------------------------------------
@async_test
async def test_a_slowloris_login_is_cut_off_and_real_logins_still_get_in():
    """Connections dribbling a LOGIN one byte at a time (never silent for read_timeout_s) are answered
    ERROR_READ_TIMEOUT ([false,false]) at small_frame_timeout_s; a real LOGIN meanwhile is answered."""
    async with serving(read_timeout_s=5, small_frame_timeout_s=0.6, max_connections=4) as server:
        slow = [await connect(server) for _ in range(3)]
        started = asyncio.get_running_loop().time()

        async def dribble(writer):
            with suppress(OSError):
                for byte in LOGIN_DEMO:
                    writer.write(bytes([byte]))
                    await asyncio.sleep(0.1)

        dribblers = [asyncio.create_task(dribble(w)) for _, w in slow]
        assert await request_login(server) == OK_DEMO  # the fourth slot is free
        for reader, _ in slow:
            assert await _peek_len(reader) == FAILED
            assert await reader.read() == b""  # closed after the reply
        assert asyncio.get_running_loop().time() - started < 2.0
        for task in dribblers:
            task.cancel()
        await wait_for(lambda: server.active_connections == 0)
        assert {r.outcome for r in server.records if r.command == "LOGIN"} == {"OK", "ERROR_READ_TIMEOUT"}


@async_test
async def test_a_connection_that_never_speaks_is_closed_after_the_first_byte_timeout():
    async with serving(first_byte_timeout_s=0.3) as server:
        reader, _ = await connect(server)
        started = asyncio.get_running_loop().time()
        assert await reader.read() == b""  # closed without a reply: nothing was asked
        assert asyncio.get_running_loop().time() - started < 2.0


@async_test
async def test_an_upload_below_the_minimum_rate_is_cut_off():
    async with serving(upload_grace_s=0.3, min_upload_bytes_per_s=50, read_timeout_s=5) as server:
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        writer.write(frame(IMAGE, image_payload([b"x" * 5000]))[:20])  # then nothing more
        assert await read_reconstruction(reader) == ("", b"ERROR_READ_TIMEOUT")
        await wait_for(lambda: server.pending_reconstructions == 0)


@async_test
async def test_one_address_cannot_hold_every_connection():
    async with serving(max_connections_per_address=2) as server:
        held = [await connect(server) for _ in range(2)]
        reader, writer = await connect(server)  # a third from 127.0.0.1
        writer.write(LOGIN_DEMO)
        assert await _peek_len(reader) == FAILED  # ERROR_BUSY in LOGIN's shape
        other_reader, other_writer = await asyncio.open_connection(
            "127.0.0.1", server.port, local_addr=("127.0.0.2", 0)
        )
        assert await login(other_reader, other_writer) == OK_DEMO  # another address is not affected
        other_writer.close()
        for _, w in held:
            w.close()


class PiecewiseDownload(BytesDownload):
    """Records how it is read and whether it was closed."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.reads: list[int] = []
        self.closed = False

    async def read(self, n: int) -> bytes:
        self.reads.append(n)
        return await super().read(n)

    async def close(self) -> None:
        self.closed = True
        await super().close()


class DownloadBackend(FakeBackend):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.data = os.urandom(size)
        self.opened: list[PiecewiseDownload] = []

    async def open_glb(self, hash_text: str) -> PiecewiseDownload:
        download = PiecewiseDownload(self.data)
        self.opened.append(download)
        return download


@async_test
async def test_get_glb_is_streamed_from_the_backend_piece_by_piece():
    backend = DownloadBackend(3 * 256 * 1024 + 5)
    async with serving(backend) as server:
        assert await one_shot(server, frame(GET_GLB, b"a" * 64), reconstruction=False) == backend.data
    (download,) = backend.opened
    assert max(download.reads) <= 256 * 1024 and len(download.reads) == 4
    assert download.closed


@async_test
async def test_a_reader_that_does_not_take_the_glb_is_dropped_and_frees_its_download():
    backend = DownloadBackend(32 * 1024 * 1024)  # far more than the socket buffers hold
    async with serving(backend, download_grace_s=0.5, min_download_bytes_per_s=10 * 1024 * 1024, max_downloads=1) as server:
        reader, writer = await connect(server)
        writer.write(frame(GET_GLB, b"a" * 64))  # and never read
        await wait_for(lambda: backend.opened and backend.opened[0].closed, timeout=10)
        await wait_for(lambda: server.records and server.records[-1].outcome == "DISCONNECTED")
        assert await one_shot(server, frame(GET_GLB, b"a" * 64), reconstruction=False) == backend.data  # slot free
        writer.close()


@async_test
async def test_get_glb_answers_busy_over_max_downloads():
    backend = DownloadBackend(32 * 1024 * 1024)
    async with serving(backend, max_downloads=1) as server:
        reader, writer = await connect(server)
        writer.write(frame(GET_GLB, b"a" * 64))  # a slow reader holds the only download slot
        await wait_for(lambda: len(backend.opened) == 1)
        assert await one_shot(server, frame(GET_GLB, b"a" * 64), reconstruction=False) == b"ERROR_BUSY"
        writer.close()


@async_test
async def test_an_over_limit_upload_is_read_to_its_end_so_its_sender_reads_the_error():
    """Like the Android app: write the whole body, slowly, before reading. The server answers at the
    header, then keeps discarding what was announced, so the writes do not fail and the code arrives."""
    async with serving(max_payload_bytes=1024, read_timeout_s=5) as server:
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        body = os.urandom(3 * 1024 * 1024)
        writer.write(struct.pack(">BI", IMAGE, len(body)))
        for start in range(0, len(body), 256 * 1024):  # ~3 s in all: longer than the old 2 s linger
            writer.write(body[start : start + 256 * 1024])
            await writer.drain()  # raises if the server reset the connection
            await asyncio.sleep(0.25)
        assert await read_reconstruction(reader) == ("", b"ERROR_PAYLOAD_TOO_LARGE")
        assert await reader.read() == b""
        writer.close()


@async_test
async def test_an_image_upload_goes_to_disk_as_it_arrives(tmp_path):
    async with serving(spool_dir=str(tmp_path)) as server:
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        photo = os.urandom(3 * 1024 * 1024)
        data = frame(IMAGE, image_payload([photo, b"second"]))
        writer.write(data[: 3 * 1024 * 1024])  # most of the first photo, then a pause
        await wait_for(lambda: sum(p.stat().st_size for p in spooled_files(tmp_path)) >= 2 * 1024 * 1024)
        writer.write(data[3 * 1024 * 1024 :])
        name, glb = await read_reconstruction(reader)
        assert name.endswith(".glb") and glb[4:] == (photo + b"|second")[:64]  # the backend got both photos
        writer.close()
    assert spooled_files(tmp_path) == []


@async_test
async def test_the_listener_speaks_tls_when_given_a_certificate(tmp_path):
    import ssl
    import subprocess

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    async with serving(tls_cert_file=str(cert), tls_key_file=str(key)) as server:
        client = ssl.create_default_context(cafile=str(cert))
        client.check_hostname = False
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client)
        assert await login(reader, writer) == OK_DEMO
        writer.write(IMAGE_FRAME)
        assert (await read_reconstruction(reader))[0].endswith(".glb")
        writer.close()
        plain_reader, plain_writer = await connect(server)  # a plain client gets no protocol reply
        plain_writer.write(LOGIN_DEMO)
        assert await plain_reader.read(100) != OK_DEMO
        plain_writer.close()


@async_test
async def test_drain_answers_what_is_under_way_and_closes_idle_connections():
    backend = FakeBackend()
    backend.gate = asyncio.Event()
    settings = ProxySettings(host="127.0.0.1", port=0)
    server = await start_server(settings, backend, max_images=5, port=0)
    busy_reader, busy_writer = await connect(server)
    assert await login(busy_reader, busy_writer) == OK_DEMO
    busy_writer.write(IMAGE_FRAME)
    await wait_for(lambda: backend.started == 1)
    idle_reader, _ = await connect(server)  # connected, nothing sent
    draining = asyncio.create_task(server.drain(handover_s=0, timeout_s=10))
    assert await asyncio.wait_for(idle_reader.read(), 5) == b""  # closed once idle for a moment
    assert not draining.done()  # the reconstruction is still under way
    backend.gate.set()
    assert (await read_reconstruction(busy_reader))[0].endswith(".glb")
    await asyncio.wait_for(draining, 5)
    assert not server.serving
