"""Running one step per photo on a few threads: results in order, the first failure stops the rest.

Pillow lets go of the GIL while it decodes and resizes, so threads decode
photos side by side. At most `workers` steps run at once, and, given each
step's weight (a photo's decoded pixels), only as many as a budget allows,
which bounds the full-size pixels an upload holds; a step starts only when
the caller's thread has seen every earlier one that ended succeed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
Progress = Callable[[int, int], None]  # (steps done, steps)


def available_workers(workers: int) -> int:
    """`workers`, or for 0 the CPUs this process may run on."""
    if workers < 0:
        raise ValueError(f"workers must be 0 (the CPUs) or positive, got {workers!r}")
    if workers:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def map_in_order(
    step: Callable[[int], T],
    count: int,
    workers: int,
    progress: Progress | None = None,
    *,
    weights: Sequence[int] | None = None,
    budget: int | None = None,
) -> list[T]:
    """[step(0), ..., step(count - 1)], at most `workers` (0: the CPUs) running at once.

    Steps start in order, a new one only when a running one has succeeded,
    and, given `weights` (one a step) and a `budget`, only while the weights
    of the running steps stay within the budget (a step alone always runs).
    `progress` is called on the caller's thread with (steps done, count) as
    each step ends. Once a step raises, no further step starts; the running
    ones are waited for, then the exception of the lowest-numbered failed
    step is raised.
    """
    workers = min(available_workers(workers), count)
    if workers <= 1:
        results = []
        for index in range(count):
            results.append(step(index))
            if progress is not None:
                progress(index + 1, count)
        return results
    futures: list[Future] = []
    running: dict[Future, int] = {}  # the running steps and their weights

    def start_more(pool: ThreadPoolExecutor) -> None:
        while len(futures) < count and len(running) < workers:
            weight = weights[len(futures)] if weights is not None else 0
            if running and budget is not None and sum(running.values()) + weight > budget:
                return
            future = pool.submit(step, len(futures))
            futures.append(future)
            running[future] = weight

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        try:
            start_more(pool)
            done_count = 0
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                if any(future.exception() is not None for future in done):
                    break
                for future in done:
                    del running[future]
                    done_count += 1
                    if progress is not None:
                        progress(done_count, count)
                start_more(pool)
        finally:
            wait(futures)  # no step outlives the call, whatever ends it
    failed = [future for future in futures if future.exception() is not None]
    if failed:
        raise failed[0].exception()
    return [future.result() for future in futures]
