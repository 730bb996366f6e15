"""Hostile videos: a container that understates its length, frames over the size limit, endless decoding.

The videos are real (devkit/media.py writes them with PyAV); the understated
one is an MP4 whose `mvhd`/`tkhd`/`mdhd` durations are rewritten to claim
one second. A probe counts the converted frames alive while decoding.
"""

from __future__ import annotations

import weakref

import pytest

import serve_app.frames.video as video
from serve_app.frames import sample_video
from serve_app.frames.video_limits import DecodeBudget, VideoLimits
from tcp_proxy.errors import TooManyFramesError, TooManyPixelsError

FRAMES = 60  # one a second: a minute of video
HELD_BEYOND_MAX = 3  # video.THINNING_SLACK (2) + the frame just converted, before the grid thins


@pytest.fixture(scope="module")
def minute(media, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bomb")
    return media.write_video(folder / "minute.mp4", [media.numbered_frame(i) for i in range(FRAMES)], fps=1)


@pytest.fixture(scope="module")
def understated(media, minute):
    """The same minute of video, its container claiming one second."""
    path = minute.with_name("understated.mp4")
    path.write_bytes(media.understate_duration(minute.read_bytes(), 1.0))
    return path


class LiveFrames:
    """Counts the RGB frames the reader converted that are still alive, and their peak."""

    def __init__(self) -> None:
        self.live = self.peak = self.converted = 0

    def track(self, array):
        self.live += 1
        self.converted += 1
        self.peak = max(self.peak, self.live)
        weakref.finalize(array, self._freed)
        return array

    def _freed(self) -> None:
        self.live -= 1


@pytest.fixture
def live_frames(monkeypatch) -> LiveFrames:
    probe = LiveFrames()
    convert = video._SampledReader._to_rgb
    monkeypatch.setattr(video._SampledReader, "_to_rgb", lambda reader, frame: probe.track(convert(reader, frame)))
    return probe


def test_the_container_claims_one_second(media, understated):
    import av

    with av.open(str(understated)) as container:
        stream = container.streams.video[0]
        assert float(stream.duration * stream.time_base) == pytest.approx(1.0)
        assert sum(1 for _ in container.decode(stream)) == FRAMES


@pytest.mark.parametrize("sharpest", [False, True])
def test_an_understated_video_never_holds_more_than_max_frames(media, understated, live_frames, sharpest):
    max_frames = 4
    frames = sample_video(understated, fps=1.0, max_frames=max_frames, sharpest=sharpest)
    assert live_frames.converted > 2 * max_frames  # the whole minute was sampled...
    assert live_frames.peak <= max_frames + HELD_BEYOND_MAX  # ...and thinned as it went
    got = [media.read_index(frame) for frame in frames]
    assert max_frames // 2 <= len(got) <= max_frames and got == sorted(set(got))
    assert got[0] == 0 and got[-1] >= FRAMES // 2  # spread over the whole minute, not its first second
    gaps = {b - a for a, b in zip(got, got[1:])}
    assert len(gaps) == 1  # evenly spaced


def test_an_honest_video_keeps_its_evenly_spaced_frames(media, minute, live_frames):
    frames = sample_video(minute, fps=1.0, max_frames=4)
    assert [media.read_index(frame) for frame in frames] == [0, 20, 39, 59]
    assert live_frames.converted == 4  # the declared length picks the sample times: nothing to thin


def test_frames_over_the_pixel_limit_are_refused_before_any_is_decoded(minute, monkeypatch):
    decoded = []
    monkeypatch.setattr(video._SampledReader, "run", lambda reader: decoded.append(reader) or [])
    with pytest.raises(TooManyPixelsError) as info:
        sample_video(minute, limits=VideoLimits(max_pixels=160 * 120 - 1))
    assert info.value.code == "ERROR_TOO_MANY_PIXELS" and "160x120" in info.value.message
    assert decoded == []


def test_frames_at_the_pixel_limit_are_decoded(minute):
    assert len(sample_video(minute, limits=VideoLimits(max_pixels=160 * 120))) >= 1


def test_the_frames_decoded_are_capped(understated, live_frames):
    with pytest.raises(TooManyFramesError) as info:
        sample_video(understated, fps=1.0, max_frames=4, limits=VideoLimits(max_decoded_frames=10))
    assert info.value.code == "ERROR_TOO_MANY_FRAMES" and "10 frames" in info.value.message
    assert live_frames.converted <= 10


def test_the_decode_time_is_capped(understated):
    with pytest.raises(TooManyFramesError, match="took more than"):
        sample_video(understated, fps=1.0, limits=VideoLimits(max_seconds=1e-9))


def test_the_budget_counts_frames_size_and_time():
    now = [0.0]
    budget = DecodeBudget(VideoLimits(max_pixels=100, max_decoded_frames=2, max_seconds=5.0), clock=lambda: now[0])
    budget.check_size(10, 10)
    budget.check_size(0, 0)  # a size the codec parameters do not give is checked on each frame
    with pytest.raises(TooManyPixelsError):
        budget.count_frame(11, 10)  # a stream that grows midway
    budget.count_frame(10, 10)
    budget.count_frame(10, 10)
    with pytest.raises(TooManyFramesError):
        budget.count_frame(10, 10)
    now[0] = 5.0
    budget = DecodeBudget(VideoLimits(max_seconds=5.0), clock=lambda: now[0])
    now[0] = 10.0
    budget.check_time()
    now[0] = 10.5
    with pytest.raises(TooManyFramesError):
        budget.check_time()


def test_a_stream_without_a_duration_is_thinned_too(media, tmp_path, live_frames):
    import av

    path = media.write_video(tmp_path / "raw.h264", [media.numbered_frame(i) for i in range(FRAMES)], fps=25)
    with av.open(str(path)) as container:
        assert container.duration is None and container.streams.video[0].duration is None  # raw H.264: no length
    frames = sample_video(path, fps=25.0, max_frames=4)
    assert live_frames.converted > 2 * 4 and live_frames.peak <= 4 + HELD_BEYOND_MAX
    got = [media.read_index(frame) for frame in frames]
    assert got[0] == 0 and got[-1] >= FRAMES // 2 and len({b - a for a, b in zip(got, got[1:])}) == 1
