"""`Admission.position`: a slot's place among the queued requests, in the order their uploads completed."""

from __future__ import annotations

from tcp_proxy.admission import Admission


def test_position_counts_the_queued_slots_ahead_in_upload_order():
    admission = Admission(max_pending=8, max_per_user=8, max_wait_s=60.0)
    first, second, third = (admission.admit(user, 10) for user in (1, 2, 1))
    assert admission.position(first) is None  # still uploading: not in line
    third.uploaded()
    first.uploaded()
    assert (admission.position(third), admission.position(first), admission.position(second)) == (0, 1, None)
    second.uploaded()
    assert admission.position(second) == 2
    third.release(finished=True)
    assert (admission.position(first), admission.position(second), admission.position(third)) == (0, 1, None)
    second.release()
    assert admission.position(first) == 0 and admission.position(second) is None


def test_a_slot_released_before_its_upload_completed_never_enters_the_line():
    admission = Admission(max_pending=8, max_per_user=8, max_wait_s=60.0)
    dropped, kept = admission.admit(1), admission.admit(2)
    dropped.release()
    dropped.uploaded()  # after release: nothing
    kept.uploaded()
    assert admission.position(dropped) is None and admission.position(kept) == 0 and admission.queued == 1
