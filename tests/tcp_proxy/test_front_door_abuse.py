"""Scenarios 6-8 of the abuse check (devkit/abuse_front_door.py) against the in-process server, scaled down."""

from __future__ import annotations

import proxy_fakes as fakes
import pytest
from proxy_serving import async_test, serving

from devkit.abuse_front_door import (
    check_over_limit_dribble,
    check_starvation,
    check_unread_downloads,
)
from devkit.loopback_wire import Target

PASSWORD = "pw"


@pytest.fixture(autouse=True)
def users(monkeypatch):
    for name in ("front-hog", "front-other"):
        monkeypatch.setitem(fakes.USERS, name, (PASSWORD, False))


@async_test
async def test_starvation_scenario_meets_its_goal():
    async with serving(max_wait_s=1.0, upload_grace_s=30, min_upload_bytes_per_s=10) as server:
        target = Target("127.0.0.1", server.port)
        finding = await check_starvation(target, "front-hog", "front-other", PASSWORD, slow_upload_s=1.5)
    assert finding.met, finding
    assert finding.figures["admitted"] == 5


@async_test
async def test_over_limit_dribble_scenario_meets_its_goal():
    async with serving(max_connections_per_address=6, read_timeout_s=10) as server:
        target = Target("127.0.0.1", server.port)
        finding = await check_over_limit_dribble(
            target, "front-other", PASSWORD, connections=6, every_s=0.3, hold_s=5.0
        )
    assert finding.met, finding


@async_test
async def test_unread_downloads_scenario_meets_its_goal():
    backend = fakes.FakeBackend()
    big, small = "b" * 64, "c" * 64
    backend.stored[big] = b"glTF" + b"g" * (16 << 20)
    backend.stored[small] = b"glTF small"
    async with serving(backend, max_downloads=8, max_connections_per_address=8, read_timeout_s=15) as server:
        target = Target("127.0.0.1", server.port)
        finding = await check_unread_downloads(target, big, small, b"glTF small", connections=10, hold_s=4.0)
    assert finding.met, finding
