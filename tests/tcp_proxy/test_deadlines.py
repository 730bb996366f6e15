"""Read deadlines: first byte, idle, silence, whole small frames, minimum upload rate."""

from __future__ import annotations

from tcp_proxy.codec import GET_GLB, IMAGE, LOGIN, VIDEO
from tcp_proxy.deadlines import MinRate, ReadDeadlines
from tcp_proxy.settings import ProxySettings

SETTINGS = ProxySettings(
    first_byte_timeout_s=10,
    idle_timeout_s=300,
    idle_timeout_before_login_s=30,
    read_timeout_s=60,
    small_frame_timeout_s=10,
    min_upload_bytes_per_s=1000,
    upload_grace_s=30,
)


def test_a_new_connection_must_send_its_first_byte_soon():
    d = ReadDeadlines(SETTINGS, connected_at=100.0)
    assert d.timeout(False, None, 100.0) == 10
    assert d.timeout(False, None, 107.0) == 3
    assert d.timeout(False, None, 111.0) == 0
    d.received(20, in_frame=False, now=101.0)  # a whole frame arrived and was answered
    d.frame_ended()
    assert d.timeout(False, None, 200.0) == 30  # between frames, no login yet: the short idle timeout
    d.logged_in = True
    assert d.timeout(False, None, 200.0) == 300  # logged in: the idle timeout


def test_the_idle_timeout_before_login_is_never_the_longer_one():
    d = ReadDeadlines(ProxySettings(idle_timeout_s=20, idle_timeout_before_login_s=30), connected_at=0.0)
    d.received(5, in_frame=False, now=1.0)
    assert d.timeout(False, None, 2.0) == 20


def test_a_dribbled_small_frame_must_still_finish_in_time():
    d = ReadDeadlines(SETTINGS, connected_at=0.0)
    d.received(1, in_frame=True, now=1.0)  # the command byte
    for t in range(2, 11):  # one byte a second: never silent for long
        assert d.timeout(True, LOGIN, float(t)) == 11.0 - t
        d.received(1, in_frame=True, now=float(t))
    assert d.timeout(True, LOGIN, 11.0) == 0
    assert d.timeout(True, GET_GLB, 11.0) == 0


def test_silence_inside_a_frame_is_bounded_by_the_read_timeout():
    d = ReadDeadlines(SETTINGS, connected_at=0.0)
    d.received(5, in_frame=True, now=0.0)
    assert d.timeout(True, VIDEO, 0.0) == 30.005  # grace + 5 bytes' worth, under the 60 s silence
    d.received(10_000_000, in_frame=True, now=1.0)
    assert d.timeout(True, VIDEO, 1.0) == 60  # far ahead of the minimum rate: only silence counts


def test_an_upload_must_keep_up_the_minimum_rate_after_the_grace():
    d = ReadDeadlines(SETTINGS, connected_at=0.0)
    d.received(1000, in_frame=True, now=0.0)
    for t in range(1, 40):  # 500 bytes/s: half the minimum
        d.received(500, in_frame=True, now=float(t))
    # 1000 + 39 * 500 = 20,500 bytes buy 20.5 s after the 30 s grace: due at 50.5 s
    assert d.timeout(True, IMAGE, 40.0) == 10.5
    assert d.timeout(True, IMAGE, 51.0) == 0
    assert d.timeout(True, None, 51.0) == 0  # a payload being skipped counts as an upload


def test_each_frame_has_its_own_clock():
    d = ReadDeadlines(SETTINGS, connected_at=0.0)
    d.received(3, in_frame=True, now=0.0)
    d.received(20, in_frame=False, now=1.0)
    d.frame_ended()
    d.received(2, in_frame=True, now=100.0)
    assert d.timeout(True, LOGIN, 105.0) == 5


def test_min_rate_due_times_are_grace_plus_bytes_over_rate():
    settings = ProxySettings(upload_grace_s=30, min_upload_bytes_per_s=1000, download_grace_s=5, min_download_bytes_per_s=500)
    assert MinRate.upload(settings).due(100.0, 0) == 130.0
    assert MinRate.upload(settings).due(100.0, 10_000) == 140.0
    assert MinRate.download(settings).due(0.0, 1000) == 7.0
