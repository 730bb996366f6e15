"""IMAGE and VIDEO uploads on a connection: who may send them, admission, spooling, limits."""

from __future__ import annotations

import asyncio
import os
import struct

from proxy_fakes import FakeBackend, frame, image_payload, read_reconstruction
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
    spooled_files,
    wait_for,
)

from tcp_proxy.codec import GET_GLB, IMAGE, LOGIN, VIDEO


# -- who may upload ----------------------------------------------------------
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


# -- framing and size limits -------------------------------------------------
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
        assert await read_login_reply(reader) == FAILED


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


# -- admission ---------------------------------------------------------------
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


# -- spool files -------------------------------------------------------------
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
        assert await read_login_reply(reader) == OK_VIP  # still in step
        writer.close()
    assert spooled_files(tmp_path) == []
