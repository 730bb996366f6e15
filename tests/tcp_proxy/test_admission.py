"""Admission: slots per user and in all, and the wait estimate from the backend's pace."""

from __future__ import annotations

from tcp_proxy.admission import Admission, WaitEstimate


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_estimate_until_a_reconstruction_finished():
    estimate = WaitEstimate(Clock())
    assert estimate.interval_s is None
    assert estimate.wait_s(50) == 0.0


def test_the_pace_is_measured_only_while_busy():
    clock = Clock()
    estimate = WaitEstimate(clock)
    estimate.busy()
    clock.now += 2.0
    estimate.finished(still_pending=1)
    assert estimate.interval_s == 2.0
    clock.now += 1.0
    estimate.finished(still_pending=0)  # idle from here
    assert estimate.interval_s == 0.3 * 1.0 + 0.7 * 2.0
    clock.now += 1000.0  # a quiet hour does not count as a slow reconstruction
    estimate.busy()
    clock.now += 1.7
    estimate.finished(still_pending=0)
    assert abs(estimate.interval_s - (0.3 * 1.7 + 0.7 * 1.7)) < 1e-9
    assert abs(estimate.wait_s(3) - 3 * 1.7) < 1e-9


def test_refuses_by_wait_per_user_and_in_all():
    clock = Clock()
    admission = Admission(max_pending=5, max_per_user=2, max_wait_s=10.0, clock=clock)
    a1, a2 = admission.admit(1), admission.admit(1)
    assert a1 and a2 and admission.admit(1) is None  # user 1's cap
    b1 = admission.admit(2)
    clock.now += 4.0
    a1.release(finished=True)  # pace: 4 s between finished reconstructions
    assert admission.pending == 2 and admission.estimated_wait_s == 8.0
    assert admission.admit(3) is not None  # would wait 8 s: admitted
    assert admission.estimated_wait_s == 12.0
    assert admission.admit(4) is None  # would wait 12 s > 10 s
    a1.release(finished=True)  # a second release of the same slot does nothing
    assert admission.pending == 3
    for slot in (a2, b1):
        slot.release()
    assert admission.pending == 1


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
