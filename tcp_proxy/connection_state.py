"""Where one connection stands: a state machine over the request it serves.

A connection serves one request at a time. Its state says which step that
request is at and carries what the step holds, so nothing of a request is
left behind when the connection moves on:

    Idle ─frame begins─> Receiving ─IMAGE/VIDEO admitted─> Uploading ─upload complete─> Reconstructing
                             └─LOGIN, GET_GLB or LIST read─> Computing

    Receiving, Uploading, Reconstructing, Computing ─reply begins─> Replying ─reply sent─> Idle

    any state ─> Closing (final)

* Idle: between requests.
* Receiving: a frame has begun (its command byte is in) and is being read;
  an IMAGE/VIDEO header is checked for admission here.
* Uploading: an admitted IMAGE/VIDEO request whose payload is written to
  its spool file; it holds the `Upload` (user, admission slot, file).
* Reconstructing: the upload is complete and the backend works on it; it
  still holds the Upload.
* Computing: a LOGIN, GET_GLB or LIST request waits for the backend.
* Replying: the reply is being sent.
* Closing: the connection is ending.

A request may be answered at any step (refused at its header, timed out,
badly framed), so every state that awaits a reply may move to Replying.
Leaving Uploading or Reconstructing, other than from the one to the other,
drops the Upload: its slot is given back and its file deleted, whatever
ended the request. Entering Reconstructing marks the slot queued (its
work now counts in the admission's wait estimate). Any move the table
`NEXT` does not list raises `StateError` and leaves the state as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TypeVar

from .admission import Slot
from .backend import User
from .spool import Spool


class StateError(RuntimeError):
    """A move the state machine does not allow, or a state that is not the one expected."""


@dataclass
class Request:
    """One request, from its first byte to its reply: what was asked, by whom, and each step's time."""

    command: int
    length: int  # the declared payload length (0 when answered before its header was whole)
    started: float
    username: str | None = None  # for the log line
    stages: dict[str, float] = field(default_factory=dict)  # measured here, in order
    backend_timings: dict[str, float] = field(default_factory=dict)  # reported by the backend

    def mark(self, stage: str) -> None:
        """Record the time since the previous mark (or the start) as `stage`."""
        self.stages[stage] = time.monotonic() - self.started - sum(self.stages.values())


@dataclass
class Upload:
    """An admitted IMAGE/VIDEO upload: who it runs as, its admission slot and its file."""

    user: User
    slot: Slot
    spool: Spool
    image_sizes: list[int] = field(default_factory=list)  # of an IMAGE upload, as they arrive

    def drop(self) -> None:
        """Give the slot back and delete the file (each a no-op when done already)."""
        self.spool.discard()
        self.slot.release()


class State:
    """One step of a connection's life."""


@dataclass(frozen=True)
class Idle(State):
    pass


@dataclass(frozen=True)
class Receiving(State):
    request: Request


@dataclass(frozen=True)
class Uploading(State):
    request: Request
    upload: Upload


@dataclass(frozen=True)
class Reconstructing(State):
    request: Request
    upload: Upload


@dataclass(frozen=True)
class Computing(State):
    request: Request


@dataclass(frozen=True)
class Replying(State):
    request: Request


@dataclass(frozen=True)
class Closing(State):
    pass


NEXT: dict[type[State], tuple[type[State], ...]] = {
    Idle: (Receiving, Closing),
    Receiving: (Uploading, Computing, Replying, Closing),
    Uploading: (Reconstructing, Replying, Closing),
    Reconstructing: (Replying, Closing),
    Computing: (Replying, Closing),
    Replying: (Idle, Closing),
    Closing: (),
}

AWAITING_REPLY = (Receiving, Uploading, Reconstructing, Computing)
BUSY = AWAITING_REPLY + (Replying,)

S = TypeVar("S", bound=State)


class ConnectionState:
    """A connection's current state; every move is checked against `NEXT`."""

    def __init__(self) -> None:
        self.current: State = Idle()

    def move(self, new: S) -> S:
        """Enter `new` (returned); StateError if `NEXT` does not allow it."""
        old = self.current
        if type(new) not in NEXT[type(old)]:
            raise StateError(f"a connection cannot move from {_name(old)} to {_name(new)}")
        self.current = new
        if isinstance(old, (Uploading, Reconstructing)) and not isinstance(new, Reconstructing):
            old.upload.drop()
        if isinstance(new, Reconstructing):
            new.upload.slot.uploaded()
        return new

    def close(self) -> None:
        """Enter Closing from any state (nothing if closing already)."""
        if not isinstance(self.current, Closing):
            self.move(Closing())

    def expect(self, kind: type[S]) -> S:
        """The current state, which must be a `kind`; StateError if it is not."""
        if not isinstance(self.current, kind):
            raise StateError(f"expected {kind.__name__}, the connection is {_name(self.current)}")
        return self.current

    @property
    def awaiting_reply(self) -> bool:
        """Whether a request is being read or computed (its reply not begun)."""
        return isinstance(self.current, AWAITING_REPLY)

    @property
    def busy(self) -> bool:
        """Whether a request is under way: being read, computed, or its reply being sent."""
        return isinstance(self.current, BUSY)

    @property
    def request(self) -> Request:
        """The request awaiting its reply; StateError when there is none."""
        current = self.current
        if not isinstance(current, AWAITING_REPLY):
            raise StateError(f"no request awaits a reply while {_name(current)}")
        return current.request


def _name(state: State) -> str:
    return type(state).__name__
