"""The connection state machine: the moves it allows, the ones it refuses, what leaving a state releases."""

from __future__ import annotations

import os
import time

import pytest

from tcp_proxy.admission import Admission
from tcp_proxy.backend import User
from tcp_proxy.codec import IMAGE, LOGIN
from tcp_proxy.connection_state import (
    NEXT,
    Closing,
    Computing,
    ConnectionState,
    Idle,
    Receiving,
    Reconstructing,
    Replying,
    Request,
    State,
    StateError,
    Upload,
    Uploading,
)
from tcp_proxy.spool import Spool

DEMO = User(id=1, username="demo", is_vip=False)
STATES = list(NEXT)


@pytest.fixture
def admission():
    return Admission(max_pending=4, max_per_user=4, max_wait_s=60)


@pytest.fixture
def upload(admission, tmp_path):
    """An admitted upload: it holds one of `admission`'s slots and a spool file."""
    return Upload(DEMO, admission.admit(DEMO.id, 100), Spool(tmp_path, ".images"))


def example(kind: type[State], request: Request, upload: Upload) -> State:
    """A state of `kind` over `request` (and `upload` where it holds one)."""
    if kind in (Idle, Closing):
        return kind()
    if kind in (Uploading, Reconstructing):
        return kind(request, upload)
    return kind(request)


def reach(kind: type[State], request: Request, upload: Upload) -> ConnectionState:
    """A connection brought to a state of `kind` by allowed moves only."""
    steps = {
        Idle: [],
        Receiving: [Receiving],
        Uploading: [Receiving, Uploading],
        Reconstructing: [Receiving, Uploading, Reconstructing],
        Computing: [Receiving, Computing],
        Replying: [Receiving, Replying],
        Closing: [Closing],
    }
    state = ConnectionState()
    for step in steps[kind]:
        state.move(example(step, request, upload))
    assert isinstance(state.current, kind)
    return state


def test_the_table_lists_every_state_and_only_states():
    assert set(NEXT) == set(State.__subclasses__())
    assert all(target in NEXT for targets in NEXT.values() for target in targets)
    assert NEXT[Closing] == ()
    assert all(Closing in NEXT[kind] for kind in STATES if kind is not Closing)


def test_a_login_goes_from_its_header_to_its_reply_and_back_to_idle():
    state = ConnectionState()
    assert isinstance(state.current, Idle) and not state.awaiting_reply
    request = Request(LOGIN, 20, started=0.0)
    state.move(Receiving(request))
    assert state.awaiting_reply and state.request is request
    assert state.move(Computing(request)).request is request
    assert state.request is request
    state.move(Replying(request))
    assert not state.awaiting_reply
    state.move(Idle())
    assert isinstance(state.current, Idle)


def test_an_upload_is_carried_into_reconstructing_and_dropped_once_replied(admission, upload):
    state = ConnectionState()
    request = Request(IMAGE, 100, started=0.0)
    state.move(Receiving(request))
    state.move(Uploading(request, upload))
    state.move(Reconstructing(request, upload))
    assert admission.pending == 1 and os.path.exists(upload.spool.path)  # still held for the backend
    assert state.expect(Reconstructing).upload is upload
    state.move(Replying(request))
    assert admission.pending == 0 and not os.path.exists(upload.spool.path)


def test_an_upload_answered_early_gives_its_slot_back_and_loses_its_file(admission, upload):
    state = reach(Uploading, Request(IMAGE, 100, started=0.0), upload)
    state.move(Replying(state.request))
    assert admission.pending == 0 and not os.path.exists(upload.spool.path)


def test_a_finished_reconstruction_is_released_once(admission, upload):
    state = reach(Reconstructing, Request(IMAGE, 100, started=0.0), upload)
    upload.slot.release(finished=True)  # the backend answered: it counts towards the pace
    state.move(Replying(state.request))
    assert admission.pending == 0 and admission.estimate.interval_s is not None


@pytest.mark.parametrize("kind", [Uploading, Reconstructing])
def test_closing_drops_the_upload_a_state_holds(kind, admission, upload):
    state = reach(kind, Request(IMAGE, 100, started=0.0), upload)
    state.close()
    assert isinstance(state.current, Closing)
    assert admission.pending == 0 and not os.path.exists(upload.spool.path)


@pytest.mark.parametrize("kind", STATES, ids=lambda kind: kind.__name__)
def test_any_state_can_close_and_closing_is_final(kind, upload):
    request = Request(IMAGE, 100, started=0.0)
    state = reach(kind, request, upload)
    state.close()
    state.close()  # closing already: nothing happens
    assert isinstance(state.current, Closing) and not state.awaiting_reply
    for target in STATES:
        with pytest.raises(StateError):
            state.move(example(target, request, upload))


@pytest.mark.parametrize(
    "kind, target",
    [(kind, target) for kind in STATES for target in STATES if target not in NEXT[kind]],
    ids=lambda kind: kind.__name__,
)
def test_a_move_the_table_does_not_list_is_refused_and_changes_nothing(kind, target, admission, upload):
    request = Request(IMAGE, 100, started=0.0)
    state = reach(kind, request, upload)
    before, pending = state.current, admission.pending
    with pytest.raises(StateError, match=f"from {kind.__name__} to {target.__name__}"):
        state.move(example(target, request, upload))
    assert state.current is before and admission.pending == pending


def test_the_request_and_the_expected_state_are_checked(upload):
    state = ConnectionState()
    with pytest.raises(StateError, match="no request"):
        state.request
    request = Request(IMAGE, 100, started=0.0)
    state.move(Receiving(request))
    assert state.expect(Receiving).request is request
    with pytest.raises(StateError, match="expected Uploading"):
        state.expect(Uploading)
    state.move(Replying(request))
    with pytest.raises(StateError):
        state.request  # the reply has begun: the request no longer awaits it


def test_a_request_marks_each_step_since_the_previous_one():
    request = Request(LOGIN, 0, started=time.monotonic() - 3.0)  # begun three seconds ago
    request.mark("receive")
    request.mark("backend")
    # the second step counts from the first mark, not from the start (which would make it the longer)
    assert request.stages["receive"] >= 3.0 and 0.0 <= request.stages["backend"] < request.stages["receive"]
    assert list(request.stages) == ["receive", "backend"]
