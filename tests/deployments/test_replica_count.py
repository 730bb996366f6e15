"""Following a deployment's RUNNING replicas: changes are handed on, failures and slow answers keep the last count."""

from __future__ import annotations

import asyncio
import threading

import pytest

from serve_app.deployments.replica_count import follow_running_replicas


class Answers:
    """What the controller answers, one per question; then the loop is stopped."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.asked: list[tuple[str, str]] = []
        self.release = threading.Event()
        self.done = threading.Event()  # every answer was given

    def __call__(self, app: str, deployment: str) -> int | None:
        self.asked.append((app, deployment))
        if not self.answers:
            self.done.set()
            return None
        answer = self.answers.pop(0)
        if answer == "slow":
            self.release.wait(5)
            return 7
        if isinstance(answer, BaseException):
            raise answer
        return answer


def follow(answers: Answers, timeout_s: float = 5.0) -> list[int]:
    applied: list[int] = []

    async def run() -> None:
        task = asyncio.create_task(
            follow_running_replicas(
                "app", "VGGTInference", applied.append, period_s=0, timeout_s=timeout_s, count=answers
            )
        )
        assert await asyncio.to_thread(answers.done.wait, 30)
        task.cancel()
        answers.release.set()  # a slow answer still under way finishes now
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    return applied


def test_each_change_of_the_count_is_applied_once():
    answers = Answers(1, 1, 2, 2, 1)
    assert follow(answers) == [1, 2, 1]
    assert answers.asked[0] == ("app", "VGGTInference")


def test_a_failed_or_unknown_answer_keeps_the_last_count():
    assert follow(Answers(2, RuntimeError("controller restarting"), None, 2, 3)) == [2, 3]


def test_a_slow_answer_is_abandoned_at_the_timeout_and_the_loop_goes_on():
    assert follow(Answers(1, "slow", 2), timeout_s=0.05) == [1, 2]  # 7, answered after the timeout, is never applied
