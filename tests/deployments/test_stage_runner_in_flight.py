"""HandleStageRunner.in_flight over stand-in handles (no cluster): the runs inside the stages, counted
from the handle calls until the result or the error comes back."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("ray.serve")

from serve_app.deployments.stage_runner import HandleStageRunner  # noqa: E402


class GatedHandle:
    """A stage whose run waits for `gate`, then returns its argument or raises `error`."""

    def __init__(self, gate: asyncio.Event, error: Exception | None = None) -> None:
        self.run, self.gate, self.error, self.entered = self, gate, error, 0

    def remote(self, argument):
        return self._run(argument)

    async def _run(self, argument):
        argument = await argument if asyncio.iscoroutine(argument) else argument
        self.entered += 1
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        return argument


async def until(condition) -> None:
    """Let the runs go on until `condition` holds (the deadline only matters when the test fails)."""

    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), timeout=30)


def test_runs_count_from_the_handle_calls_until_their_results_come_back():
    async def scenario():
        gates = [asyncio.Event() for _ in range(3)]
        runner = HandleStageRunner([GatedHandle(gate) for gate in gates])
        assert runner.in_flight == 0
        runs = [asyncio.create_task(runner.run(f"upload-{n}")) for n in range(3)]
        await until(lambda: runner._handles[0].entered == 3)
        assert runner.in_flight == 3  # all waiting in the first stage
        gates[0].set()
        gates[1].set()
        await until(lambda: runner._handles[2].entered == 3)
        assert runner.in_flight == 3  # past two stages: still inside the third
        gates[2].set()
        assert await asyncio.gather(*runs) == ["upload-0", "upload-1", "upload-2"]
        assert runner.in_flight == 0

    asyncio.run(scenario())


def test_a_failed_or_cancelled_run_leaves_the_count():
    async def scenario():
        gate = asyncio.Event()
        runner = HandleStageRunner([GatedHandle(gate, error=RuntimeError("replica lost"))])
        failing = asyncio.create_task(runner.run("upload"))
        cancelled = asyncio.create_task(runner.run("other"))
        await until(lambda: runner._handles[0].entered == 2)
        assert runner.in_flight == 2
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert runner.in_flight == 1
        gate.set()
        with pytest.raises(RuntimeError, match="replica lost"):
            await failing
        assert runner.in_flight == 0

    asyncio.run(scenario())
