"""Where an export's time goes: seconds per named step, kept only when asked for."""

from __future__ import annotations

import time


class Laps:
    """Seconds per step (in the order first marked); `mark(step)` closes a step begun at the previous mark."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._since = time.perf_counter()

    def mark(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = self.seconds.get(step, 0.0) + now - self._since
        self._since = now
