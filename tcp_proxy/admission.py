"""Admission of reconstructions: by the wait a new one would face, not by a fixed count.

An IMAGE/VIDEO request takes a slot at its header (before its upload) and
gives it back when its reply is sent or the connection ends. It is refused
`ERROR_BUSY` at the header when

* the wait it would face is over `max_wait_s`: the requests ahead of it
  times the measured seconds between finished reconstructions while the
  backend was busy (its throughput, whatever its replicas and batching; an
  exponentially weighted mean, so it follows load and redeploys),
* or its user already has `max_per_user` requests pending (one user cannot
  take every slot),
* or `max_pending` requests are pending in all, or their announced uploads
  would pass `max_upload_bytes` together (bounds on the spool disk, whatever
  the estimate says).

Until a reconstruction has finished there is no estimate and only the
counts apply.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Callable

SMOOTHING = 0.3  # weight of the newest interval in the running mean


class WaitEstimate:
    """Seconds between finished reconstructions while others were pending (the backend's pace)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.interval_s: float | None = None  # None until one has finished
        self._since: float | None = None  # start of the current interval; None while idle

    def busy(self) -> None:
        """A request arrived while none was pending: an interval starts now."""
        if self._since is None:
            self._since = self._clock()

    def finished(self, still_pending: int) -> None:
        """A reconstruction finished; `still_pending` others remain."""
        now = self._clock()
        if self._since is not None:
            sample = now - self._since
            self.interval_s = sample if self.interval_s is None else SMOOTHING * sample + (1 - SMOOTHING) * self.interval_s
        self._since = now if still_pending else None

    def idle(self) -> None:
        """Nothing is pending any more: the next request starts a new interval."""
        self._since = None

    def wait_s(self, ahead: int) -> float:
        """Estimated wait of a request with `ahead` requests before it (0 without an estimate)."""
        return ahead * (self.interval_s or 0.0)


class Slot:
    """One admitted reconstruction; `release` once when its request ends (later calls do nothing)."""

    def __init__(self, admission: "Admission", user_id: int, upload_bytes: int):
        self._admission = admission
        self.user_id = user_id
        self.upload_bytes = upload_bytes
        self._held = True

    def release(self, finished: bool = False) -> None:
        """finished: the backend produced a reconstruction (it counts towards the pace)."""
        if self._held:
            self._held = False
            self._admission._release(self, finished)


class Admission:
    """Pending reconstructions of all clients and per user, and the wait estimate."""

    def __init__(
        self,
        *,
        max_pending: int,
        max_per_user: int,
        max_wait_s: float,
        max_upload_bytes: int = 1 << 62,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_pending = max_pending
        self.max_per_user = max_per_user
        self.max_wait_s = max_wait_s
        self.max_upload_bytes = max_upload_bytes
        self.upload_bytes = 0  # announced by the pending requests
        self.estimate = WaitEstimate(clock)
        self._by_user: Counter[int] = Counter()
        self.pending = 0

    @property
    def estimated_wait_s(self) -> float:
        """The wait a request admitted now would face."""
        return self.estimate.wait_s(self.pending)

    def refuse(self, user_id: int, upload_bytes: int = 0) -> bool:
        """Whether a new request of `user_id` announcing `upload_bytes` must be refused now."""
        return (
            self.pending >= self.max_pending
            or self._by_user[user_id] >= self.max_per_user
            or self.upload_bytes + upload_bytes > self.max_upload_bytes
            or self.estimated_wait_s > self.max_wait_s
        )

    def admit(self, user_id: int, upload_bytes: int = 0) -> Slot | None:
        """A slot for the request, or None when it must be refused."""
        if self.refuse(user_id, upload_bytes):
            return None
        if self.pending == 0:
            self.estimate.busy()
        self.pending += 1
        self.upload_bytes += upload_bytes
        self._by_user[user_id] += 1
        return Slot(self, user_id, upload_bytes)

    def _release(self, slot: Slot, finished: bool) -> None:
        self.pending -= 1
        self.upload_bytes -= slot.upload_bytes
        self._by_user[slot.user_id] -= 1
        if self._by_user[slot.user_id] <= 0:
            del self._by_user[slot.user_id]
        if finished:
            self.estimate.finished(self.pending)
        elif self.pending == 0:
            self.estimate.idle()
