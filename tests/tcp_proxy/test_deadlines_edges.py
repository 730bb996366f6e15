"""Read deadlines at their edges: a frame whose first byte was not recorded, and the count reset between frames."""

from __future__ import annotations

from tcp_proxy.codec import IMAGE, LOGIN
from tcp_proxy.deadlines import ReadDeadlines
from tcp_proxy.settings import ProxySettings

SETTINGS = ProxySettings(read_timeout_s=60, small_frame_timeout_s=10, min_upload_bytes_per_s=1000, upload_grace_s=30)


def test_a_frame_not_yet_timed_is_timed_from_now():
    d = ReadDeadlines(SETTINGS, connected_at=0.0)
    assert d.timeout(True, LOGIN, 50.0) == 10
    assert d.timeout(True, IMAGE, 50.0) == 30


def test_a_finished_frame_leaves_no_bytes_counted_for_the_next():
    d = ReadDeadlines(SETTINGS, connected_at=0.0)
    d.received(5000, in_frame=True, now=1.0)
    d.frame_ended()
    assert (d.frame_started, d.frame_bytes) == (None, 0)
    assert d.timeout(True, IMAGE, 2.0) == 30
