"""Admission at its edges: the pace's running mean and idle decay, a slot's one-time calls, the per-user share's
floor of one request, and counts that come back when slots are released."""

from __future__ import annotations

import pytest

from tcp_proxy.admission import IDLE_HALF_LIFE_S, Admission, WaitEstimate
from clock import Clock


def queued(admission: Admission, user_id: int):
    slot = admission.admit(user_id)
    assert slot is not None
    slot.uploaded()
    return slot


def test_the_running_mean_weights_the_newest_interval_by_0_3():
    clock = Clock(100.0)
    estimate = WaitEstimate(clock)
    estimate.busy()
    clock.now += 2.0
    estimate.finished(still_queued=1)
    clock.now += 4.0
    estimate.finished(still_queued=1)
    assert estimate.interval_s == pytest.approx(0.3 * 4.0 + 0.7 * 2.0)


def test_the_decay_runs_from_when_the_queue_first_became_empty():
    clock = Clock(100.0)
    estimate = WaitEstimate(clock)
    estimate.busy()
    clock.now += 2.0
    estimate.finished(still_queued=0)
    clock.now += IDLE_HALF_LIFE_S
    estimate.idle()  # still idle: the decay goes on from the first moment
    assert estimate.interval_s == pytest.approx(1.0)
    clock.now += IDLE_HALF_LIFE_S
    assert estimate.interval_s == pytest.approx(0.5)


def test_a_slot_is_not_queued_until_uploaded_and_never_after_its_release():
    admission = Admission(max_pending=4, max_per_user=4, max_wait_s=60)
    slot = admission.admit(1)
    assert slot.queued is False
    slot.release()
    slot.uploaded()
    assert (admission.queued, admission.pending) == (0, 0)


def test_a_release_is_not_a_finished_reconstruction_unless_said():
    clock = Clock(100.0)
    admission = Admission(max_pending=4, max_per_user=4, max_wait_s=60, clock=clock)
    slot = queued(admission, 1)
    clock.now += 5.0
    slot.release()
    assert admission.estimate.interval_s is None


def test_a_request_that_announces_no_upload_counts_no_bytes():
    admission = Admission(max_pending=4, max_per_user=4, max_wait_s=60, max_upload_bytes=0)
    assert admission.refuse(1) is False
    assert admission.admit(1) is not None
    assert admission.upload_bytes == 0


def test_another_users_share_is_at_least_one_request_and_no_more_when_the_pace_is_slow():
    clock = Clock(100.0)
    admission = Admission(max_pending=10, max_per_user=10, max_wait_s=10, clock=clock)
    first = queued(admission, 1)  # no estimate yet: only the counts apply
    queued(admission, 1)
    queued(admission, 1)
    clock.now += 20.0  # one reconstruction takes twice max_wait_s: half of max_wait_s fits no whole request
    first.release(finished=True)
    assert admission.estimate.interval_s == pytest.approx(20.0)
    assert admission.wait_s(2) == pytest.approx(20.0)  # user 1's two queued count as one for user 2
    assert admission.wait_s(1) == pytest.approx(40.0)


def test_a_users_count_comes_back_when_its_slot_is_released():
    admission = Admission(max_pending=4, max_per_user=1, max_wait_s=60)
    slot = admission.admit(1)
    assert admission.admit(1) is None
    slot.release()
    assert admission.admit(1) is not None


def test_the_next_interval_starts_when_a_reconstruction_finishes_with_others_queued():
    clock = Clock(100.0)
    admission = Admission(max_pending=4, max_per_user=4, max_wait_s=600, clock=clock)
    a, b = queued(admission, 1), queued(admission, 2)
    clock.now += 2.0
    a.release(finished=True)
    clock.now += 4.0
    b.release(finished=True)
    assert admission.estimate.interval_s == pytest.approx(0.3 * 4.0 + 0.7 * 2.0)


def test_the_pace_decays_once_the_last_queued_request_leaves_unfinished():
    clock = Clock(100.0)
    admission = Admission(max_pending=4, max_per_user=4, max_wait_s=600, clock=clock)
    a, b, c = queued(admission, 1), queued(admission, 2), queued(admission, 3)
    clock.now += 2.0
    a.release(finished=True)
    b.release()  # c is still queued: the backend is still busy
    clock.now += IDLE_HALF_LIFE_S
    assert admission.estimate.interval_s == pytest.approx(2.0)
    c.release()  # nothing queued now
    clock.now += IDLE_HALF_LIFE_S
    assert admission.estimate.interval_s == pytest.approx(1.0)


def test_an_upload_after_the_queue_emptied_starts_a_new_interval():
    clock = Clock(100.0)
    admission = Admission(max_pending=4, max_per_user=4, max_wait_s=600, clock=clock)
    queued(admission, 1).release()
    slot = queued(admission, 1)
    clock.now += 3.0
    slot.release(finished=True)
    assert admission.estimate.interval_s == pytest.approx(3.0)
