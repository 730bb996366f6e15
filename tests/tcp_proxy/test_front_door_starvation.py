"""One user's slow or held uploads do not make everyone else's reconstructions ERROR_BUSY."""

from __future__ import annotations

import asyncio

from proxy_fakes import frame, image_payload, read_reconstruction
from proxy_serving import (
    LOGIN_DEMO,
    LOGIN_VIP,
    OK_DEMO,
    OK_VIP,
    async_test,
    connect,
    login,
    serving,
    wait_for,
)

from tcp_proxy.codec import IMAGE

SLOW_UPLOAD_S = 1.5  # each of the slow user's uploads; over max_wait_s below


async def slow_upload(server, payload: bytes, pieces: int = 3) -> tuple[str, bytes]:
    """LOGIN as demo, then an IMAGE sent in `pieces` over SLOW_UPLOAD_S; its reply."""
    reader, writer = await connect(server)
    assert await login(reader, writer, LOGIN_DEMO) == OK_DEMO
    data = frame(IMAGE, image_payload([payload]))
    step = -(-len(data) // pieces)
    for start in range(0, len(data), step):
        writer.write(data[start : start + step])
        await asyncio.sleep(SLOW_UPLOAD_S / pieces)
    reply = await read_reconstruction(reader)
    writer.close()
    return reply


async def vip_request(server, i: int) -> tuple[str, bytes]:
    reader, writer = await connect(server)
    assert await login(reader, writer, LOGIN_VIP) == OK_VIP
    writer.write(frame(IMAGE, image_payload([b"vip %d" % i])))
    reply = await read_reconstruction(reader)
    writer.close()
    return reply


@async_test
async def test_another_users_requests_are_admitted_while_one_user_holds_slow_uploads():
    """demo finishes two uploads of 1.5 s each and holds a third open; the backend itself is fast, so
    a vip request waits for nothing and is admitted, although max_wait_s is 1 s."""
    async with serving(max_wait_s=1.0, upload_grace_s=30, min_upload_bytes_per_s=10) as server:
        held_reader, held = await connect(server)
        assert await login(held_reader, held, LOGIN_DEMO) == OK_DEMO
        held.write(frame(IMAGE, image_payload([b"h" * 1000]))[:50])  # and no more
        await wait_for(lambda: server.pending_reconstructions == 1)
        for i in range(2):
            await slow_upload(server, b"slow %d" % i * 20)
        results = [await vip_request(server, i) for i in range(5)]
        admitted = sum(name.endswith(".glb") for name, _ in results)
        assert admitted >= 4, results
        assert server.admission.estimated_wait_s < 1.0
        held.close()
        await wait_for(lambda: server.pending_reconstructions == 0)
