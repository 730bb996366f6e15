"""IMAGE/VIDEO while the service knows its model is not loaded: refused at the header, payload never read.

The server is given the model's state as a plain callable (`model_loaded`); the
backend here is the in-memory fake, since the proxy is the unit under test.
"""

from __future__ import annotations

import asyncio
import struct

from proxy_fakes import FakeBackend, frame, image_payload, read_reconstruction
from proxy_serving import LOGIN_VIP, OK_DEMO, OK_VIP, async_test, connect, login, serving, spooled_files, wait_for

from tcp_proxy.codec import IMAGE, LIST, VIDEO

# the IMAGE/VIDEO error shape: u32 0 (no name), u32 length, the code
MODEL_NOT_LOADED_REPLY = b"\x00\x00\x00\x00" + b"\x00\x00\x00\x16" + b"ERROR_MODEL_NOT_LOADED"
DECLARED = 50_000_000  # a payload length the test never sends


class ModelState:
    """What the service knows of its model, changed by the test; counts how often it is asked."""

    def __init__(self, loaded: bool) -> None:
        self.loaded = loaded
        self.asked = 0

    def __call__(self) -> bool:
        self.asked += 1
        return self.loaded


def uploads(server) -> list[tuple[str, str]]:
    return [(r.command, r.outcome) for r in server.records if r.command in ("IMAGE", "VIDEO")]


async def read_exactly_reply(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readexactly(len(MODEL_NOT_LOADED_REPLY)), 10)


@async_test
async def test_an_upload_is_refused_at_its_header_before_any_payload_is_sent(tmp_path):
    backend = FakeBackend()
    async with serving(backend, model_loaded=ModelState(loaded=False), spool_dir=str(tmp_path)) as server:
        for command in (IMAGE, VIDEO):
            reader, writer = await connect(server)
            assert await login(reader, writer, LOGIN_VIP) == OK_VIP
            writer.write(struct.pack(">BI", command, DECLARED))  # the header alone: no byte of the payload
            assert await read_exactly_reply(reader) == MODEL_NOT_LOADED_REPLY
            writer.close()
        assert backend.started == 0 and spooled_files(tmp_path) == []
        assert server.pending_reconstructions == 0  # no admission slot was taken
        await wait_for(lambda: len(uploads(server)) == 2)
        assert uploads(server) == [("IMAGE", "ERROR_MODEL_NOT_LOADED"), ("VIDEO", "ERROR_MODEL_NOT_LOADED")]


@async_test
async def test_the_connection_stays_in_step_and_a_new_socket_works_once_loaded(tmp_path):
    backend, model = FakeBackend(), ModelState(loaded=False)
    async with serving(backend, model_loaded=model, spool_dir=str(tmp_path)) as server:
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        upload = frame(IMAGE, image_payload([b"one", b"two"]))
        writer.write(upload[:5])
        assert await read_exactly_reply(reader) == MODEL_NOT_LOADED_REPLY
        writer.write(upload[5:])  # the refused payload, sent anyway: discarded
        writer.write(frame(LIST, b""))  # the next frame on the same connection is read normally
        (length,) = struct.unpack(">I", await reader.readexactly(4))
        assert await reader.readexactly(length) == b"[]"
        writer.close()

        model.loaded = True
        reader, writer = await connect(server)  # a new socket (the address binding of the LOGIN above)
        writer.write(upload)
        name, glb = await read_reconstruction(reader)
        assert name.endswith(".glb") and glb.startswith(b"glTF")
        writer.close()
        assert backend.started == 1 and spooled_files(tmp_path) == []


@async_test
async def test_not_logged_in_is_answered_first_without_asking_the_model():
    model = ModelState(loaded=False)
    async with serving(model_loaded=model) as server:
        reader, writer = await connect(server)
        writer.write(struct.pack(">BI", IMAGE, DECLARED))
        assert await read_reconstruction(reader) == ("", b"ERROR_NOT_LOGGED_IN")
        writer.close()
    assert model.asked == 0


@async_test
async def test_a_loaded_model_is_asked_at_each_header_and_the_next_checks_still_apply():
    model = ModelState(loaded=True)
    async with serving(model_loaded=model) as server:
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        writer.write(frame(VIDEO, b"clip"))
        assert await read_reconstruction(reader) == ("", b"ERROR_VIP_REQUIRED")
        writer.write(frame(IMAGE, image_payload([b"x"])))
        assert (await read_reconstruction(reader))[0].endswith(".glb")
        writer.close()
    assert model.asked == 2


@async_test
async def test_a_server_not_told_the_model_state_leaves_it_to_the_backend():
    async with serving() as server:
        assert server.model_loaded() is True
        reader, writer = await connect(server)
        assert await login(reader, writer) == OK_DEMO
        writer.write(frame(IMAGE, image_payload([b"x"])))
        assert (await read_reconstruction(reader))[0].endswith(".glb")
        writer.close()
