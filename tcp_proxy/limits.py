"""Counters that refuse instead of queueing.

The proxy never waits for capacity: a connection or reconstruction over its
limit is answered `ERROR_BUSY` at once, so clients learn it immediately.
"""

from __future__ import annotations


class Limit:
    """A non-blocking counting semaphore with a readable level."""

    def __init__(self, maximum: int):
        if maximum < 0:
            raise ValueError("maximum must be >= 0")
        self.maximum = maximum
        self.in_use = 0

    @property
    def full(self) -> bool:
        return self.in_use >= self.maximum

    def try_acquire(self) -> bool:
        """Take one unit if one is free; False (and nothing taken) otherwise."""
        if self.full:
            return False
        self.in_use += 1
        return True

    def release(self) -> None:
        if self.in_use <= 0:
            raise RuntimeError("release without acquire")
        self.in_use -= 1
