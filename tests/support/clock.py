"""`Clock`: a clock a test moves by hand (`clock.now += 5`), passed where the code takes `clock=`."""

from __future__ import annotations


class Clock:
    """Seconds that only the test moves; `start` is whatever the code under test needs (monotonic or Unix)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now
