"""Slowing down repeated failed logins, per username and per client address.

After `max_failures` failures within `failure_window_s` for one username or
one address, that key is refused for `lockout_s`; a further failure while the
old ones are still in the window refuses it again. A refused login is not
checked at all, so guessing stops costing the server scrypt work.

The state is in memory and per process: each replica counts on its own and a
restart forgets it. A success clears the username's failures but not the
address's, so one valid account cannot reset the count for guessing others.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

from serve_app.config import AuthSettings

PRUNE_ABOVE_KEYS = 10_000  # tracked keys before stale ones are dropped


class LoginThrottle:
    """Failure counts and lockouts keyed by username and by address."""

    def __init__(self, settings: AuthSettings, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._clock = clock
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._blocked_until: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def is_blocked(self, username: str | None, address: str | None) -> bool:
        """Whether a login for this username or from this address is refused now."""
        now = self._clock()
        with self._lock:
            return any(self._blocked_until.get(key, 0.0) > now for key in _keys(username, address))

    def record_failure(self, username: str | None, address: str | None) -> None:
        now = self._clock()
        with self._lock:
            for key in _keys(username, address):
                failures = self._failures.setdefault(key, deque())
                failures.append(now)
                self._forget_old(failures, now)
                if len(failures) >= self._settings.max_failures:
                    self._blocked_until[key] = now + self._settings.lockout_s
            if len(self._failures) > PRUNE_ABOVE_KEYS:
                self._prune(now)

    def record_success(self, username: str | None) -> None:
        with self._lock:
            for key in _keys(username, None):
                self._failures.pop(key, None)
                self._blocked_until.pop(key, None)

    def _forget_old(self, failures: deque[float], now: float) -> None:
        while failures and failures[0] <= now - self._settings.failure_window_s:
            failures.popleft()

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._forget_old(self._failures[key], now)
            if not self._failures[key] and self._blocked_until.get(key, 0.0) <= now:
                del self._failures[key]
                self._blocked_until.pop(key, None)


def _keys(username: str | None, address: str | None) -> Iterator[tuple[str, str]]:
    if username is not None:
        yield ("user", username)
    if address is not None:
        yield ("address", address)
