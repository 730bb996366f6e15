"""HandleStageRunner's `on_stage`: each stage reported once the previous stage's output is ready, never fetched.

Stand-in handles and responses; `ray.wait` is replaced by a stand-in that
answers from the outputs the test has made ready (no cluster is started).
"""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("ray.serve")

from serve_app.deployments import stage_runner
from serve_app.deployments.stage_runner import HandleStageRunner


class Response:
    def __init__(self, name: str, argument) -> None:
        self.name, self.argument = name, argument

    async def _to_object_ref(self) -> str:
        return self.name

    def __await__(self):
        return self._value().__await__()

    async def _value(self):
        return f"{self.argument if isinstance(self.argument, str) else await self.argument}>{self.name}"


class Handle:
    def __init__(self, name: str) -> None:
        self.run, self.name = self, name

    def remote(self, argument) -> Response:
        return Response(self.name, argument)


def test_stages_are_reported_in_order_as_their_inputs_become_ready(monkeypatch):
    ready: set[str] = set()
    waits: list[tuple] = []

    def wait(refs, num_returns, timeout, fetch_local):
        waits.append((tuple(refs), fetch_local))
        return [r for r in refs if r in ready], [r for r in refs if r not in ready]

    monkeypatch.setattr(stage_runner.ray, "wait", wait)
    monkeypatch.setattr(stage_runner, "READY_POLL_S", 0.001)

    async def scenario():
        seen: list[str] = []
        runner = HandleStageRunner([Handle(n) for n in ("decode", "inference", "export")])
        task = asyncio.create_task(runner.run("upload", seen.append))
        for _ in range(50):
            await asyncio.sleep(0.001)
        assert seen == ["decode"]  # the decode output is not ready yet
        ready.add("decode")
        while len(seen) < 2:
            await asyncio.sleep(0.001)
        assert seen == ["decode", "inference"]
        ready.add("inference")
        assert await task == "upload>decode>inference>export"
        assert seen == ["decode", "inference", "export"]

    asyncio.run(scenario())
    assert waits and all(fetch_local is False for _, fetch_local in waits)  # outputs never pulled here
    assert {refs for refs, _ in waits} == {("decode",), ("inference",)}  # the last stage is awaited, not waited on
