"""map_in_order: steps on threads, results in order, at most `workers` at once, the first failure stops the rest."""

from __future__ import annotations

import os
import threading

import pytest

from serve_app.frames.parallel import available_workers, map_in_order


class Steps:
    """Steps that record which ran, how many ran at once, and which fail."""

    def __init__(self, failing: set[int] = frozenset()) -> None:
        self.failing = failing
        self.lock = threading.Lock()
        self.ran: list[int] = []
        self.running = 0
        self.most_at_once = 0
        self.threads: set[str] = set()

    def __call__(self, index: int) -> int:
        with self.lock:
            self.ran.append(index)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            if index in self.failing:
                raise ValueError(f"step {index} failed")
            return index * index
        finally:
            with self.lock:
                self.running -= 1


@pytest.mark.parametrize("workers", [1, 2, 3, 8])
def test_results_come_in_order_with_progress_for_each(workers):
    steps, calls = Steps(), []
    assert map_in_order(steps, 7, workers, lambda done, total: calls.append((done, total))) == [i * i for i in range(7)]
    assert calls == [(done, 7) for done in range(1, 8)]
    assert sorted(steps.ran) == list(range(7)) and steps.most_at_once <= workers


def test_at_most_workers_steps_run_at_once():
    inside = threading.Barrier(3, timeout=30)  # three steps must be inside at the same time to pass it
    entered = []

    def step(index: int) -> int:
        entered.append(index)
        if index < 3:
            inside.wait()
        return index

    assert map_in_order(step, 6, 3) == list(range(6))
    assert sorted(entered[:3]) == [0, 1, 2]
    steps = Steps()
    map_in_order(steps, 12, 2)
    assert steps.most_at_once <= 2 and len(steps.threads) <= 2


def test_steps_run_together_only_within_the_budget_of_their_weights():
    for weights, budget, most in [([3] * 6, 5, 1), ([3] * 6, 6, 2), ([9, 1, 1, 1, 9, 1], 8, 3)]:
        steps = Steps()
        assert map_in_order(steps, 6, 3, weights=weights, budget=budget) == [i * i for i in range(6)]
        assert steps.most_at_once <= most, (weights, budget, steps.most_at_once)
    inside = threading.Barrier(2, timeout=30)  # two light steps must be inside together to pass it
    assert map_in_order(lambda index: inside.wait() or index, 2, 2, weights=[1, 1], budget=2) == [0, 1]


def test_the_first_failure_stops_the_steps_not_started():
    release = threading.Event()

    def step(index: int) -> int:
        if index == 1:
            release.set()
            raise ValueError("step 1 failed")
        if index == 0:
            assert release.wait(timeout=30)
        ran.append(index)
        return index

    ran: list[int] = []
    with pytest.raises(ValueError, match="step 1 failed"):
        map_in_order(step, 10, 2)
    # step 0 succeeds about when step 1 fails, and may be seen first, which starts step 2 (and,
    # were step 1's thread held up, step 3); the other six never start
    assert 0 in ran and max(ran) <= 3


def test_the_lowest_numbered_failure_is_raised_and_no_step_outlives_the_call():
    steps = Steps(failing={3, 4, 5})
    with pytest.raises(ValueError, match="step 3 failed"):
        map_in_order(steps, 20, 3)
    assert steps.running == 0 and max(steps.ran) <= 5 + 2
    with pytest.raises(ValueError, match="step 0 failed"):
        map_in_order(Steps(failing={0}), 5, 1)


def test_a_failing_progress_callback_stops_the_steps():
    steps = Steps()

    def progress(done: int, total: int) -> None:
        raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        map_in_order(steps, 10, 2, progress)
    assert steps.running == 0 and len(steps.ran) <= 3


def test_zero_workers_is_the_cpus_of_this_process():
    assert available_workers(0) == len(os.sched_getaffinity(0))
    assert available_workers(5) == 5
    with pytest.raises(ValueError):
        available_workers(-1)
