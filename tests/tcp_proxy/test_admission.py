"""Admission: slots per user and in all, and the wait estimate from the backend's pace."""

from __future__ import annotations

from tcp_proxy.admission import IDLE_HALF_LIFE_S, Admission, WaitEstimate
from clock import Clock


def queued(admission: Admission, user_id: int, upload_bytes: int = 0):
    """A slot of `user_id` whose upload is complete."""
    slot = admission.admit(user_id, upload_bytes)
    assert slot is not None
    slot.uploaded()
    return slot


def test_no_estimate_until_a_reconstruction_finished():
    estimate = WaitEstimate(Clock(100.0))
    assert estimate.interval_s is None
    assert estimate.wait_s(50) == 0.0


def test_the_pace_is_measured_only_while_busy_and_decays_while_idle():
    clock = Clock(100.0)
    estimate = WaitEstimate(clock)
    estimate.busy()
    clock.now += 2.0
    estimate.finished(still_queued=1)
    assert estimate.interval_s == 2.0
    clock.now += 1.0
    estimate.finished(still_queued=0)  # idle from here
    assert estimate.interval_s == 0.3 * 1.0 + 0.7 * 2.0
    clock.now += IDLE_HALF_LIFE_S  # a quiet minute halves it, it does not count as a slow reconstruction
    assert abs(estimate.interval_s - 0.85) < 1e-9
    estimate.busy()
    clock.now += 1.0  # not decaying while busy
    assert abs(estimate.interval_s - 0.85) < 1e-9
    estimate.finished(still_queued=0)
    assert abs(estimate.interval_s - (0.3 * 1.0 + 0.7 * 0.85)) < 1e-9
    clock.now += 100 * IDLE_HALF_LIFE_S
    assert estimate.interval_s < 1e-9 and estimate.wait_s(30) < 1e-6


def test_refuses_by_wait_per_user_and_in_all():
    clock = Clock(100.0)
    admission = Admission(max_pending=6, max_per_user=3, max_wait_s=10.0, clock=clock)
    a1, a2 = queued(admission, 1), queued(admission, 1)
    b1 = queued(admission, 2)
    clock.now += 4.0
    a1.release(finished=True)  # pace: 4 s between finished reconstructions
    assert admission.pending == 2 and admission.estimated_wait_s == 8.0
    c1 = queued(admission, 3)  # would wait 8 s: admitted
    assert admission.estimated_wait_s == 12.0
    assert admission.admit(4) is None  # would wait 12 s > 10 s
    a1.release(finished=True)  # a second release of the same slot does nothing
    assert admission.pending == 3
    for slot in (a2, b1, c1):
        slot.release()
    assert admission.pending == 0 and admission.queued == 0


def test_one_user_has_at_most_max_per_user_pending():
    admission = Admission(max_pending=10, max_per_user=2, max_wait_s=1.0)
    assert admission.admit(1) and admission.admit(1)
    assert admission.admit(1) is None and admission.admit(2) is not None


def test_uploads_still_arriving_do_not_count_in_the_wait():
    clock = Clock(100.0)
    admission = Admission(max_pending=10, max_per_user=4, max_wait_s=10.0, clock=clock)
    first = queued(admission, 1)
    clock.now += 6.0
    first.release(finished=True)  # pace: 6 s
    held = [admission.admit(1) for _ in range(3)]  # user 1 uploads three, slowly
    clock.now += 3600.0
    assert all(held) and admission.estimated_wait_s == 0.0
    assert all(admission.admit(2) for _ in range(4))  # another user is not kept waiting by them


def test_the_pace_is_timed_from_the_upload_not_the_header():
    clock = Clock(100.0)
    admission = Admission(max_pending=10, max_per_user=4, max_wait_s=10.0, clock=clock)
    slot = admission.admit(1)
    clock.now += 500.0  # a slow upload
    slot.uploaded()
    clock.now += 2.0
    slot.release(finished=True)
    assert admission.estimate.interval_s == 2.0


def test_one_users_queued_work_counts_at_most_half_the_allowed_wait_for_others():
    clock = Clock(100.0)
    admission = Admission(max_pending=20, max_per_user=8, max_wait_s=10.0, clock=clock)
    pace = queued(admission, 1)
    clock.now += 2.0
    pace.release(finished=True)  # pace: 2 s, so one user's share is 2 requests (4 s of 10)
    hog = [queued(admission, 1) for _ in range(6)]  # 12 s of work
    assert admission.estimated_wait_s == 12.0  # the backlog itself is not hidden
    assert admission.wait_s(2) == 4.0 and admission.admit(2) is not None
    assert admission.wait_s(1) == 12.0 and admission.admit(1) is None  # its own work counts in full
    more = [queued(admission, user) for user in (2, 2, 3, 3)]  # three users' shares: 4 + 4 + 4 s
    assert admission.wait_s(4) == 12.0 and admission.admit(4) is None
    for slot in hog + more:
        slot.release()


def test_the_total_cap_holds_without_an_estimate():
    admission = Admission(max_pending=2, max_per_user=5, max_wait_s=1.0)
    assert admission.admit(1) and admission.admit(2)
    assert admission.admit(3) is None


def test_announced_upload_bytes_are_budgeted_together():
    admission = Admission(max_pending=10, max_per_user=10, max_wait_s=60, max_upload_bytes=1000)
    big = admission.admit(1, 600)
    assert big is not None and admission.admit(2, 500) is None  # 1100 > 1000
    small = admission.admit(2, 400)
    assert small is not None and admission.upload_bytes == 1000
    big.release()
    assert admission.admit(3, 500) is not None


def test_the_pace_is_kept_per_replica_busy():
    clock = Clock(100.0)
    estimate = WaitEstimate(clock)
    estimate.set_replicas(2)
    estimate.busy()
    clock.now += 2.0
    estimate.finished(still_queued=3)  # two replicas busy, one finished every 2 s: 4 s each
    assert estimate.replica_interval_s == 4.0 and estimate.interval_s == 2.0
    clock.now += 3.0
    estimate.finished(still_queued=0)  # the last one ran alone: 3 s of one replica
    assert abs(estimate.replica_interval_s - (0.3 * 3.0 + 0.7 * 4.0)) < 1e-9
    estimate.set_replicas(0)  # none running (restarting): a request waits for one, counted as one
    assert estimate.replicas == 1 and estimate.interval_s == estimate.replica_interval_s


def test_a_scale_up_from_one_to_two_replicas_admits_what_one_refused():
    clock = Clock(100.0)
    admission = Admission(max_pending=20, max_per_user=10, max_wait_s=10.0, clock=clock)
    first = queued(admission, 1)
    waiting = [queued(admission, 1) for _ in range(5)]  # no estimate yet: only the counts apply
    clock.now += 4.0
    first.release(finished=True)  # one replica: 4 s per reconstruction
    assert admission.wait_s(1) == 20.0 and admission.admit(1) is None  # over max_wait_s at one replica
    admission.set_replicas(2)
    assert admission.wait_s(1) == 10.0 and admission.estimated_wait_s == 10.0  # at max_wait_s: admitted
    extra = admission.admit(1)
    assert extra is not None
    extra.uploaded()
    assert admission.wait_s(1) == 12.0 and admission.admit(1) is None  # over it at two replicas too
    admission.set_replicas(1)  # scaled back down: the wait doubles again
    assert admission.wait_s(1) == 24.0
    for slot in waiting + [extra]:
        slot.release()
