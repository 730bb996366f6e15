"""Admission of reconstructions: by the wait a new one would face, not by a fixed count.

An IMAGE/VIDEO request takes a slot at its header (before its upload), is
marked queued when its upload is complete (`Slot.uploaded`) and gives the
slot back when its reply is sent or the connection ends. It is refused
`ERROR_BUSY` at the header when

* the wait it would face is over `max_wait_s` (below),
* or its user already has `max_per_user` requests pending (one user cannot
  take every slot),
* or `max_pending` requests are pending in all, or their announced uploads
  would pass `max_upload_bytes` together (bounds on the spool disk, whatever
  the estimate says).

The wait is the queued work ahead of the request times the backend's pace:

* Only queued work counts (uploaded, waiting for or in the backend). An
  upload still arriving costs the backend nothing yet, so however slowly a
  client sends, or holds, uploads, no one else's wait grows.
* The pace is the measured seconds between finished reconstructions while
  queued work was waiting, timed from an upload's completion (never from its
  header, so slow uploads do not read as a slow backend); an exponentially
  weighted mean, so it follows load and redeploys. While nothing is queued it
  decays (halved every `IDLE_HALF_LIFE_S`), so one slow period is not held
  against the next hour.
* The pace is kept per backend replica (`Admission.set_replicas`: the
  inference replicas running now, as the serving layer reports them): each
  interval is multiplied by the replicas that were busy in it (the running
  count, at most the requests queued), and the wait divides by the replicas
  running now. A scale-up from 1 to 2 replicas halves the wait at once, so
  it admits requests a single replica would have refused; a scale-down
  doubles it.
* One user's share is capped: another user's queued work counts at most as
  many requests as fill half of `max_wait_s` at the current pace (at least
  one). No single user can by themselves push everyone else over
  `max_wait_s` (unless one reconstruction alone takes longer than that); it
  takes the queued work of several users. The requester's own
  queued work counts in full (a user queues behind themselves). The backlog
  reported (`estimated_wait_s`) counts every queued request.

Until a reconstruction has finished there is no estimate and only the
counts apply.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Callable

SMOOTHING = 0.3  # weight of the newest interval in the running mean
IDLE_HALF_LIFE_S = 60.0  # while nothing is queued, the measured pace halves this often
USER_SHARE = 0.5  # of max_wait_s: the most one other user's queued work counts for


class WaitEstimate:
    """Seconds between finished reconstructions while others were queued (the backend's pace), kept per
    backend replica so that it follows the replica count."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self.replicas = 1  # backend replicas running now (`set_replicas`)
        self._interval_s: float | None = None  # replica-seconds per reconstruction; None until one has finished
        self._since: float | None = None  # start of the current interval; None while idle
        self._idle_since: float | None = None  # when the queue last became empty

    @property
    def interval_s(self) -> float | None:
        """The pace now: seconds between finished reconstructions with `replicas` replicas running."""
        per_replica = self.replica_interval_s
        return None if per_replica is None else per_replica / self.replicas

    @property
    def replica_interval_s(self) -> float | None:
        """Seconds one replica takes per reconstruction: the running mean, decayed by the time nothing
        has been queued."""
        if self._interval_s is None or self._idle_since is None:
            return self._interval_s
        idle = max(0.0, self._clock() - self._idle_since)
        return self._interval_s * 0.5 ** (idle / IDLE_HALF_LIFE_S)

    def set_replicas(self, replicas: int) -> None:
        """The backend replicas running now (at least 1 counts: a request waits for one to start)."""
        self.replicas = max(1, int(replicas))

    def busy(self) -> None:
        """An upload completed while none was queued: an interval starts now."""
        if self._since is None:
            self._interval_s = self.replica_interval_s  # the decay so far becomes the mean's value
            self._idle_since = None
            self._since = self._clock()

    def finished(self, still_queued: int) -> None:
        """A reconstruction finished; `still_queued` others remain."""
        now = self._clock()
        if self._since is not None:
            # The replicas that were busy: each finishes one in `busy` intervals of the whole backend.
            busy = min(self.replicas, still_queued + 1)
            sample = (now - self._since) * busy
            self._interval_s = (
                sample if self._interval_s is None else SMOOTHING * sample + (1 - SMOOTHING) * self._interval_s
            )
        if still_queued:
            self._since = now
        else:
            self.idle()

    def idle(self) -> None:
        """Nothing is queued any more: the pace decays until the next upload completes."""
        if self._since is not None or self._idle_since is None:
            self._since, self._idle_since = None, self._clock()

    def wait_s(self, ahead: int) -> float:
        """Estimated wait of a request with `ahead` requests before it (0 without an estimate)."""
        return ahead * (self.interval_s or 0.0)


class Slot:
    """One admitted reconstruction: `uploaded` once its upload is complete, `release` once when its
    request ends (later calls of either do nothing)."""

    def __init__(self, admission: "Admission", user_id: int, upload_bytes: int):
        self._admission = admission
        self.user_id = user_id
        self.upload_bytes = upload_bytes
        self.queued = False
        self._held = True

    def uploaded(self) -> None:
        """The upload is complete: the request now waits for the backend (it counts in the wait)."""
        if self._held and not self.queued:
            self.queued = True
            self._admission._queue(self)

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
        self._by_user: Counter[int] = Counter()  # pending: uploading, queued or running
        self._queued_by_user: Counter[int] = Counter()  # uploaded: queued or running
        self._in_line: dict[Slot, None] = {}  # the same slots, in the order their uploads completed
        self.pending = 0

    @property
    def queued(self) -> int:
        """Requests whose upload is complete and which wait for or run in the backend."""
        return sum(self._queued_by_user.values())

    def _share(self) -> int:
        """The most requests one other user's queued work counts for."""
        interval = self.estimate.interval_s
        if not interval:
            return self.max_pending
        return max(1, math.floor(USER_SHARE * self.max_wait_s / interval))

    def wait_s(self, user_id: int) -> float:
        """The wait a request of `user_id` admitted now is counted to face (other users' shares capped)."""
        share = self._share()
        ahead = sum(
            count if user == user_id else min(count, share) for user, count in self._queued_by_user.items()
        )
        return self.estimate.wait_s(ahead)

    @property
    def estimated_wait_s(self) -> float:
        """The backlog: every queued request times the pace (what the last in line waits)."""
        return self.estimate.wait_s(self.queued)

    def set_replicas(self, replicas: int) -> None:
        """The backend's replicas running now: the wait divides by them (see the module docstring)."""
        self.estimate.set_replicas(replicas)

    def position(self, slot: Slot) -> int | None:
        """How many queued requests completed their upload before `slot`'s and are still pending
        (0: first in line); None while its upload is not complete, and once it is released."""
        for ahead, queued in enumerate(self._in_line):
            if queued is slot:
                return ahead
        return None

    def refuse(self, user_id: int, upload_bytes: int = 0) -> bool:
        """Whether a new request of `user_id` announcing `upload_bytes` must be refused now."""
        return (
            self.pending >= self.max_pending
            or self._by_user[user_id] >= self.max_per_user
            or self.upload_bytes + upload_bytes > self.max_upload_bytes
            or self.wait_s(user_id) > self.max_wait_s
        )

    def admit(self, user_id: int, upload_bytes: int = 0) -> Slot | None:
        """A slot for the request, or None when it must be refused."""
        if self.refuse(user_id, upload_bytes):
            return None
        self.pending += 1
        self.upload_bytes += upload_bytes
        self._by_user[user_id] += 1
        return Slot(self, user_id, upload_bytes)

    def _queue(self, slot: Slot) -> None:
        if not self._queued_by_user:
            self.estimate.busy()
        self._queued_by_user[slot.user_id] += 1
        self._in_line[slot] = None

    def _release(self, slot: Slot, finished: bool) -> None:
        self.pending -= 1
        self.upload_bytes -= slot.upload_bytes
        _decrement(self._by_user, slot.user_id)
        if not slot.queued:
            return
        self._in_line.pop(slot, None)
        _decrement(self._queued_by_user, slot.user_id)
        if finished:
            self.estimate.finished(self.queued)
        elif not self._queued_by_user:
            self.estimate.idle()


def _decrement(counter: Counter[int], key: int) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
