"""Requests on one connection over real loopback sockets: commands, sessions, errors, downloads."""

from __future__ import annotations

import asyncio
import json
import logging
import os

from proxy_fakes import FakeBackend, frame, image_payload, login_payload, read_reconstruction, read_u32_block
from proxy_serving import (
    OK_DEMO,
    OK_VIP,
    FAILED,
    LOGIN_DEMO,
    LOGIN_VIP,
    IMAGE_FRAME,
    async_test,
    serving,
    connect,
    login,
    read_login_reply,
    request_login,
    one_shot,
    wait_for,
)

from tcp_proxy.codec import GET_GLB, IMAGE, LIST, LOGIN, VIDEO
from tcp_proxy.errors import BadImageError
from tcp_proxy.backend import BytesDownload


# -- sessions and commands ---------------------------------------------------
@async_test
async def test_many_requests_on_one_connection_answered_in_order():
    async with serving() as server:
        reader, writer = await connect(server)
        writer.write(LOGIN_DEMO + IMAGE_FRAME + frame(GET_GLB, b"0" * 64) + frame(IMAGE, image_payload([b"x"])))
        assert await read_login_reply(reader) == OK_DEMO
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


async def logged_in_list(server) -> bytes:
    """LOGIN then LIST on one new connection: the LIST reply."""
    reader, writer = await connect(server)
    assert await login(reader, writer) == OK_DEMO
    writer.write(frame(LIST, b""))
    reply = await read_u32_block(reader)
    writer.close()
    return reply


@async_test
async def test_list_recovers_results_whose_reply_was_lost():
    backend = FakeBackend()
    backend.gate = asyncio.Event()
    async with serving(backend, list_limit=2) as server:
        assert await one_shot(server, frame(LIST, b""), reconstruction=False) == b"ERROR_NOT_LOGGED_IN"
        assert json.loads(await logged_in_list(server)) == []
        for payload in (b"first", b"second", b"third"):  # the client hangs up before each reply
            reader, writer = await connect(server)
            writer.write(frame(IMAGE, image_payload([payload])))  # through the address binding
            await wait_for(lambda: backend.started == len(backend.owners) + 1)
            writer.close()
            backend.gate.set()
            await wait_for(lambda: server.pending_reconstructions == 0)
            backend.gate.clear()
        listed = json.loads(await logged_in_list(server))
        newest_first = list(reversed(backend.stored))[:2]
        assert [entry["hash"] for entry in listed] == newest_first  # at most list_limit, newest first
        assert set(listed[0]) == {"hash", "original_name", "file_size", "created_at"}
        await wait_for(lambda: len([r for r in server.records if r.command == "LIST"]) == 3)
        assert [r.user for r in server.records if r.command == "LIST"] == [None, "demo", "demo"]
        assert [r.outcome for r in server.records if r.command == "IMAGE"] == ["DISCONNECTED"] * 3


@async_test
async def test_list_needs_a_login_on_its_own_connection_not_the_address_binding():
    """Another device behind the same NAT, never logged in, gets nothing of the last user's results."""
    async with serving() as server:
        assert await request_login(server) == OK_DEMO
        name, _ = await one_shot(server, IMAGE_FRAME)  # the binding still serves IMAGE
        assert name.endswith(".glb")
        assert await one_shot(server, frame(LIST, b""), reconstruction=False) == b"ERROR_NOT_LOGGED_IN"
        reader, writer = await connect(server)
        writer.write(frame(LIST, b""))
        assert await read_u32_block(reader) == b"ERROR_NOT_LOGGED_IN"  # the connection stays open
        assert await login(reader, writer) == OK_DEMO
        writer.write(frame(LIST, b""))
        assert [entry["hash"] for entry in json.loads(await read_u32_block(reader))] == [name[:-4]]
        writer.close()
        await wait_for(lambda: len([r for r in server.records if r.command == "LIST"]) == 3)
        assert [r.outcome for r in server.records if r.command == "LIST"] == ["ERROR_NOT_LOGGED_IN"] * 2 + ["OK"]


@async_test
async def test_list_only_shows_the_users_own_results():
    async with serving() as server:
        reader, writer = await connect(server)
        writer.write(LOGIN_VIP + IMAGE_FRAME)
        assert await read_login_reply(reader) == OK_VIP
        name, _ = await read_reconstruction(reader)
        writer.write(frame(LIST, b""))
        assert [e["hash"] for e in json.loads(await read_u32_block(reader))] == [name[:-4]]
        writer.write(LOGIN_DEMO + frame(LIST, b""))
        assert await read_login_reply(reader) == OK_DEMO
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


# -- bad requests and failures -----------------------------------------------
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
        assert await read_login_reply(reader) == OK_DEMO
        writer.close()
        await wait_for(lambda: len(server.records) == 2)
        assert server.records[0].command == "UNKNOWN" and server.records[0].outcome == "UNKNOWN_COMMAND"


@async_test
async def test_random_garbage_never_hurts_the_server():
    import random

    rng = random.Random(7)
    async with serving(read_timeout_s=0.2, max_payload_bytes=4096) as server:
        for _ in range(25):
            reader, writer = await connect(server)
            writer.write(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))
            writer.write_eof()
            await asyncio.wait_for(reader.read(), 15)  # whatever it answers, it then closes (read_timeout_s)
            writer.close()
        assert await request_login(server) == OK_DEMO
        await wait_for(lambda: server.active_connections == 0)


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
        assert await read_login_reply(reader) == OK_DEMO
        await wait_for(lambda: backend.started == 1)
        writer.close()
        await writer.wait_closed()  # gone before its result is ready
        backend.gate.set()
        await wait_for(lambda: server.active_connections == 0)
        assert len(backend.stored) == 1  # stored and reachable by its hash
        (digest,) = backend.stored
        assert await one_shot(server, frame(GET_GLB, digest.encode()), reconstruction=False) == backend.stored[digest]
        assert server.pending_reconstructions == 0


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


# -- GET_GLB downloads -------------------------------------------------------
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
