"""The listening server over real loopback sockets: connection limits, TLS, logging, drain."""

from __future__ import annotations

import asyncio
import json
import logging

from proxy_fakes import FakeBackend, frame, image_payload, read_reconstruction, read_u32_block
from proxy_serving import (
    OK_DEMO,
    FAILED,
    LOGIN_DEMO,
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

from tcp_proxy.backend import BytesDownload
from tcp_proxy.codec import GET_GLB, IMAGE, LOGIN
from tcp_proxy.settings import ProxySettings
from tcp_proxy.server import start_server


# -- connection limits -------------------------------------------------------
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
async def test_one_address_cannot_hold_every_connection():
    async with serving(max_connections_per_address=2) as server:
        held = [await connect(server) for _ in range(2)]
        reader, writer = await connect(server)  # a third from 127.0.0.1
        writer.write(LOGIN_DEMO)
        assert await read_login_reply(reader) == FAILED  # ERROR_BUSY in LOGIN's shape
        other_reader, other_writer = await asyncio.open_connection(
            "127.0.0.1", server.port, local_addr=("127.0.0.2", 0)
        )
        assert await login(other_reader, other_writer) == OK_DEMO  # another address is not affected
        other_writer.close()
        for _, w in held:
            w.close()


@async_test
async def test_twenty_concurrent_clients():
    # all twenty log in as demo, from one address
    async with serving(max_pending_per_user=20, max_downloads_per_address=20) as server:

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


# -- request log -------------------------------------------------------------
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


# -- listening and shutdown --------------------------------------------------
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


class BigGlbBackend(FakeBackend):
    """GET_GLB answers 16 MiB: far more than the socket buffers hold, so a slow reader keeps it sending."""

    data = bytes(range(256)) * (16 * 4096)

    async def open_glb(self, hash_text: str) -> BytesDownload:
        return BytesDownload(self.data)


@async_test
async def test_drain_lets_a_reply_being_sent_finish():
    server = await start_server(ProxySettings(host="127.0.0.1", port=0), BigGlbBackend(), max_images=5, port=0)
    reader, writer = await connect(server)
    writer.write(frame(GET_GLB, b"a" * 64))
    size = int.from_bytes(await reader.readexactly(4), "big")
    draining = asyncio.create_task(server.drain(handover_s=0, timeout_s=10))
    await asyncio.sleep(2.5)  # takes nothing for longer than a drain lets a connection sit idle
    assert await asyncio.wait_for(reader.readexactly(size), 10) == BigGlbBackend.data
    await asyncio.wait_for(draining, 5)
    assert not server.serving
