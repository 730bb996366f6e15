"""Video sampling on small videos written by the tests."""

from __future__ import annotations

import math

import av
import numpy as np
import pytest

from tcp_proxy.errors import NoFramesError
from serve_app.frames import sample_video
from serve_app.frames.bounds import DecodeTarget
from serve_app.frames.sampling import even_indices


def indices(media, frames):
    return [media.read_index(f) for f in frames]


def expected_indices(times, fps, max_frames):
    """First frame at or after each sample time, from a full decode's timestamps."""
    span = times[-1] - times[0]
    count = math.floor(span * fps + 1e-6) + 1
    ks = even_indices(count, max_frames) if count > max_frames else range(count)
    kept, last = [], -1
    for k in ks:
        target = times[0] + k / fps
        hit = next((i for i, t in enumerate(times) if t >= target - 1e-6 and i > last), None)
        if hit is not None:
            kept.append(hit)
            last = hit
    return kept


@pytest.fixture(scope="module")
def ten_seconds(media, tmp_path_factory):
    """10 s of numbered 160x120 frames at 30 fps, GOP 12 with B-frames."""
    path = tmp_path_factory.mktemp("video") / "landscape.mp4"
    return media.write_video(path, [media.numbered_frame(i) for i in range(300)], fps=30)


def test_landscape_at_default_rate(media, ten_seconds):
    frames = sample_video(ten_seconds)
    assert indices(media, frames) == [0, 75, 150, 225]
    for frame in frames:
        assert frame.shape == (120, 160, 3) and frame.dtype == np.uint8
        assert frame.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize(("fps", "max_frames"), [(0.4, 64), (1.0, 4), (3.3, 64), (7.0, 9), (30.0, 64), (45.0, 5)])
def test_matches_a_full_decode(media, ten_seconds, fps, max_frames):
    times = [t for t, _ in media.decode_all(ten_seconds)]
    got = indices(media, sample_video(ten_seconds, fps=fps, max_frames=max_frames))
    assert got == expected_indices(times, fps, max_frames)
    assert len(got) <= max_frames


def test_frames_between_samples_are_not_decoded(media, ten_seconds, monkeypatch):
    import serve_app.frames.video as video

    offered = []

    class Counting(video.FrameSelector):
        def offer(self, t, item):
            offered.append(t)
            super().offer(t, item)

    monkeypatch.setattr(video, "FrameSelector", Counting)
    assert indices(media, sample_video(ten_seconds, fps=0.4)) == [0, 75, 150, 225]
    # 4 samples, each needs at most the 12 frames of its group of pictures
    assert len(offered) <= 4 * 12


def test_cap_spreads_frames_over_the_whole_video(media, ten_seconds):
    got = indices(media, sample_video(ten_seconds, fps=2.0, max_frames=3))
    assert got == [0, 150, 285]


def test_variable_frame_rate(media, tmp_path):
    times = [i / 30 for i in range(60)]  # 30 fps for 2 s
    times += [2 + i / 5 for i in range(20)]  # 5 fps for 4 s
    times += [6 + i / 60 for i in range(120)]  # 60 fps for 2 s
    images = [media.numbered_frame(i) for i in range(len(times))]
    path = media.write_video(tmp_path / "vfr.mp4", images, times=times, fps=30)
    decoded = [t for t, _ in media.decode_all(path)]
    assert decoded == pytest.approx(times, abs=1e-3)
    got = indices(media, sample_video(path, fps=1.0))
    assert got == expected_indices(decoded, 1.0, 64)
    assert got == [0, 30, 60, 65, 70, 75, 80, 140]


def test_one_second_clip_gives_one_frame(media, tmp_path):
    path = media.write_video(tmp_path / "short.mp4", [media.numbered_frame(i) for i in range(30)])
    assert indices(media, sample_video(path, fps=0.4)) == [0]


def test_single_frame_video(media, tmp_path):
    path = media.write_video(tmp_path / "one.mp4", [media.numbered_frame(5)])
    assert indices(media, sample_video(path)) == [5]


def upright_cases():
    """(rotation, hflip, stored image from the upright one) as a player shows them."""
    return [
        (-90, False, lambda u: np.rot90(u, 1)),  # phone portrait: shown turned clockwise
        (90, False, lambda u: np.rot90(u, -1)),
        (180, False, lambda u: np.rot90(u, 2)),
        (0, True, lambda u: u[:, ::-1]),
    ]


@pytest.mark.parametrize(("rotation", "hflip", "store"), upright_cases())
def test_display_matrix_makes_frames_upright(media, tmp_path, rotation, hflip, store):
    upright = media.quadrants(96, 160)  # portrait scene
    stored = np.ascontiguousarray(store(upright))
    path = media.write_video(tmp_path / "rotated.mp4", [stored] * 15, rotation=rotation, hflip=hflip)
    (frame,) = sample_video(path)
    assert frame.shape == upright.shape
    assert media.quadrant_colours(frame) == media.quadrant_colours(upright)


def test_portrait_hevc_mov(media, tmp_path):
    try:
        av.Codec("libx265", "w")
    except Exception:  # noqa: BLE001 - PyAV build without an HEVC encoder
        pytest.skip("this PyAV build cannot encode HEVC")
    upright = media.quadrants(96, 160)
    stored = np.ascontiguousarray(np.rot90(upright, 1))
    path = media.write_video(tmp_path / "portrait.mov", [stored] * 40, codec="libx265", rotation=-90)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "hevc"
    frames = sample_video(path, fps=1.0, sharpest=True)
    assert len(frames) == 2
    for frame in frames:
        assert frame.shape == (160, 96, 3)
        assert media.quadrant_colours(frame) == media.quadrant_colours(upright)


def test_max_side_shrinks_frames(media, ten_seconds):
    (frame,) = sample_video(ten_seconds, max_frames=1, max_side=80)
    assert frame.shape == (60, 80, 3)


def test_invalid_arguments(ten_seconds):
    with pytest.raises(ValueError):
        sample_video(ten_seconds, fps=0)
    with pytest.raises(ValueError):
        sample_video(ten_seconds, max_frames=0)
    with pytest.raises(ValueError):
        sample_video(ten_seconds, max_side=-1)


def test_zero_length_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(NoFramesError, match="empty"):
        sample_video(path)


def test_corrupt_bytes(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(3).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(NoFramesError):
        sample_video(path)


def test_corrupt_bytes_say_so_without_ffmpegs_error_number(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(b"\x00\x01 definitely not a video" * 50)
    for source in (path, np.frombuffer(path.read_bytes(), np.uint8)):
        with pytest.raises(NoFramesError) as info:
            sample_video(source)
        message = info.value.message
        assert message.startswith("not a decodable video (") and "Invalid data" in message, message
        assert "Errno" not in message and "<none>" not in message


def test_progress_counts_the_kept_frames(ten_seconds):
    calls = []
    frames = sample_video(ten_seconds, fps=1.0, progress=lambda done, total: calls.append((done, total)))
    assert len(frames) == 10
    assert [done for done, _ in calls] == [*range(1, 11), 10]  # each kept frame, then the result
    assert {total for _, total in calls} == {10}


def test_truncated_video(ten_seconds, tmp_path):
    path = tmp_path / "cut.mp4"
    path.write_bytes(ten_seconds.read_bytes()[: ten_seconds.stat().st_size // 2])
    with pytest.raises(NoFramesError):
        sample_video(path)


def test_text_file(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 100)
    with pytest.raises(NoFramesError):
        sample_video(path)


def test_still_image_is_not_a_video(media, tmp_path):
    path = tmp_path / "photo.mp4"
    path.write_bytes(media.png_bytes(media.quadrants(64, 48)))
    with pytest.raises(NoFramesError, match="not a video"):
        sample_video(path)


def test_audio_only_file(tmp_path):
    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        samples = np.zeros((1, 1024), np.float32)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(NoFramesError, match="no video stream"):
        sample_video(path)


def test_damaged_payload_never_raises_a_decoder_error(ten_seconds, tmp_path):
    data = bytearray(ten_seconds.read_bytes())
    start = data.find(b"mdat") + 8
    end = data.find(b"moov")  # the index stays intact, the frames do not
    noise = np.random.default_rng(5).integers(0, 256, end - start, dtype=np.uint8)
    data[start:end] = noise.tobytes()
    path = tmp_path / "damaged.mp4"
    path.write_bytes(bytes(data))
    try:
        frames = sample_video(path, fps=1.0)
    except NoFramesError:
        return
    assert all(f.shape == (120, 160, 3) for f in frames)


@pytest.fixture(scope="module")
def hd_clip(media, tmp_path_factory):
    """2 s of the textured scene panning, 1280x720 H.264 like a phone's (keyframe every second)."""
    path = tmp_path_factory.mktemp("hd") / "hd.mp4"
    return media.phone_video(path, seconds=2, width=1280, height=720, bit_rate=8_000_000)


def test_frames_are_kept_at_what_the_model_needs(hd_clip):
    frames = sample_video(hd_clip, fps=1.0)
    assert len(frames) == 2
    # twice the 518 x 294 crop-mode input, aspect kept (bounds.model_decode_size)
    assert {f.shape for f in frames} == {(588, 1046, 3)} == {(*DecodeTarget().decode_size(1280, 720)[::-1], 3)}


def test_model_input_matches_a_full_size_decode(media, hd_clip):
    from serve_app.vggt.preprocess import preprocess_images

    ours = preprocess_images(sample_video(hd_clip, fps=1.0))
    full = [frame for t, frame in media.decode_all(hd_clip) if t in (0.0, 1.0)]
    reference = preprocess_images(full)
    psnr = 10 * math.log10(1.0 / float((ours - reference).pow(2).mean()))
    assert psnr >= 40.0, psnr
    assert ours.shape == reference.shape == (2, 3, 294, 518)


def test_without_a_model_target_frames_keep_their_size(hd_clip):
    (frame,) = sample_video(hd_clip, max_frames=1, target=None)
    assert frame.shape == (720, 1280, 3)
    (frame,) = sample_video(hd_clip, max_frames=1, target=None, decode_max_pixels=640 * 360)
    assert frame.shape == (360, 640, 3)


def test_the_model_size_is_taken_upright(media, tmp_path):
    stored = np.ascontiguousarray(np.rot90(media.quadrants(720, 1280), 1))  # 1280 wide as stored
    path = media.write_video(tmp_path / "portrait.mp4", [stored] * 10, rotation=-90)
    (frame,) = sample_video(path, target=DecodeTarget(mode="pad"))  # pad: the long (upright) side -> 2 x 518
    assert frame.shape == (1046, 588, 3)
    assert media.quadrant_colours(frame) == media.quadrant_colours(media.quadrants(720, 1280))
    (frame,) = sample_video(path)  # crop: the upright width 720 < 2 x 518, kept whole
    assert frame.shape == (1280, 720, 3)


def test_max_side_and_the_pixel_cap_still_bound_model_sized_frames(hd_clip):
    (frame,) = sample_video(hd_clip, max_frames=1, max_side=400)
    assert frame.shape == (225, 400, 3)
    (frame,) = sample_video(hd_clip, max_frames=1, decode_max_pixels=400 * 225)
    assert frame.shape == (224, 400, 3)  # bounds.fit_pixels: within the cap, the short side rounded down


def offered_times(monkeypatch):
    """The times of the frames the decoder outputs during sampling, in order."""
    import serve_app.frames.video as video

    offered = []

    class Counting(video.FrameSelector):
        def offer(self, t, item):
            offered.append(round(t, 3))
            super().offer(t, item)

    monkeypatch.setattr(video, "FrameSelector", Counting)
    return offered


def test_the_decoder_stops_at_each_sample(media, tmp_path, monkeypatch):
    """No B-frames (a phone's): each sample's frame is drained out of the threaded decoder instead
    of decoding the frames after it; the next keyframe restarts the decoder."""
    path = media.write_video(tmp_path / "phone.mp4", [media.numbered_frame(i) for i in range(300)], gop=30, b_frames=0)
    offered = offered_times(monkeypatch)
    assert indices(media, sample_video(path, fps=0.4)) == [0, 75, 150, 225]
    # past the first second (the keyframe interval is not known before): 2.0-2.5 s, 5.0 s, 7.0-7.5 s
    assert [t for t in offered if t >= 1.0] == [round(i / 30, 3) for i in [*range(60, 76), 150, *range(210, 226)]]


def test_a_drained_decoder_replays_its_group_of_pictures(media, tmp_path, monkeypatch):
    """Keyframes every 12 frames: 0.4 s apart at 30 fps, then 2.4 s apart at 5 fps. The sample at 2 s
    falls in the long group the sample at 1 s was drained from: decoding restarts at its keyframe."""
    times = [i / 30 for i in range(24)] + [0.8 + i / 5 for i in range(36)]
    path = media.write_video(tmp_path / "vfr.mp4", [media.numbered_frame(i) for i in range(60)],
                             times=times, gop=12, b_frames=0)
    decoded = [t for t, _ in media.decode_all(path)]
    offered = offered_times(monkeypatch)
    got = indices(media, sample_video(path, fps=1.0))
    assert got == expected_indices(decoded, 1.0, 64) == [0, 25, 30, 35, 40, 45, 50, 55]
    assert offered.count(0.8) == 2  # the long group's keyframe, decoded again for the sample at 2 s
