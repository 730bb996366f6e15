"""DecodeStage: real photos and a real video to frames, with the limits of the settings."""

from __future__ import annotations

import numpy as np
import pytest

from serve_app.config import AppSettings
from serve_app.stages import DecodeStage, Job, Upload
from tcp_proxy.errors import (
    BadImageError,
    NoFramesError,
    TooManyFramesError,
    TooManyImagesError,
    TooManyPixelsError,
)


def test_photos_become_upright_rgb_frames(photo_bytes):
    job = Job(7, "images:3")
    frames = DecodeStage(AppSettings()).run(Upload(job, images=tuple(photo_bytes)))
    assert frames.job == job and frames.source == "images"
    assert [f.shape for f in frames.frames] == [(120, 160, 3)] * 3


def test_video_is_sampled_at_the_configured_rate(video_clip):
    settings = AppSettings.from_dict({"frames": {"fps": 1.0, "max_frames": 2}})
    frames = DecodeStage(settings).run(Upload.from_video_file(Job(1, "video"), video_clip))
    assert frames.source == "video"
    assert len(frames.frames) == 2  # 3 s at 1 fps gives 3, capped at max_frames
    assert frames.frames[0].shape == (120, 160, 3)


def test_limits_come_from_the_settings(photo_bytes):
    stage = DecodeStage(AppSettings.from_dict({"frames": {"max_images": 2}}))
    with pytest.raises(TooManyImagesError):
        stage.run(Upload(Job(), images=tuple(photo_bytes)))


@pytest.mark.parametrize(
    ("upload", "error"),
    [
        (Upload(Job(), images=(b"not an image",)), BadImageError),
        (Upload(Job(), images=()), NoFramesError),
    ],
)
def test_bad_uploads_raise_their_wire_error(upload, error):
    with pytest.raises(error):
        DecodeStage(AppSettings()).run(upload)


def test_unreadable_video_raises_no_frames(tmp_path):
    path = tmp_path / "junk.mp4"
    path.write_bytes(b"\x00 not a video" * 100)
    with pytest.raises(NoFramesError):
        DecodeStage(AppSettings()).run(Upload.from_video_file(Job(), path))


def test_frames_are_reduced_to_the_configured_bound(photo_bytes, video_clip):
    stage = DecodeStage(AppSettings.from_dict({"frames": {"decode_max_pixels": 80 * 60}}))
    photos = stage.run(Upload(Job(), images=tuple(photo_bytes)))
    assert [f.shape for f in photos.frames] == [(120, 160, 3)] * 3  # photos: kept for the model, smaller than its input
    video = stage.run(Upload.from_video_file(Job(), video_clip))
    assert {f.shape for f in video.frames} == {(60, 80, 3)}


@pytest.mark.parametrize(
    ("settings", "mode", "oversample"),
    [({}, "crop", 2.0), ({"model": {"preprocess_mode": "pad"}, "frames": {"decode_oversample": 3.0}}, "pad", 3.0)],
)
def test_photos_are_reduced_to_what_the_model_needs(settings, mode, oversample):
    from devkit import media
    from serve_app.frames.bounds import DecodeTarget, model_input_size

    stage = DecodeStage(AppSettings.from_dict(settings))
    assert stage.target == DecodeTarget(mode=mode, oversample=oversample, max_pixels=2048 * 1536)
    portrait = media.jpeg_bytes(np.full((2000, 1500, 3), 90, np.uint8))
    photos = stage.run(Upload(Job(), images=(portrait, portrait)))
    width, height = model_input_size(1500, 2000, mode=mode)
    assert [f.shape for f in photos.frames] == [(height, width, 3)] * 2


def test_the_total_pixels_of_an_upload_are_capped(photo_bytes):
    three_photos = 3 * 160 * 120
    stage = DecodeStage(AppSettings.from_dict({"frames": {"max_request_pixels": three_photos - 1}}))
    with pytest.raises(TooManyPixelsError) as info:
        stage.run(Upload(Job(), images=tuple(photo_bytes)))
    assert info.value.code == "ERROR_TOO_MANY_PIXELS"
    stage = DecodeStage(AppSettings.from_dict({"frames": {"max_request_pixels": three_photos}}))
    assert len(stage.run(Upload(Job(), images=tuple(photo_bytes))).frames) == 3


def test_a_video_travels_as_its_bytes_not_its_path(video_clip, tmp_path):
    """What the decode stage gets works on another node: no path, and the same frames as the file gives."""
    import pickle

    spooled = tmp_path / "upload.video"
    spooled.write_bytes(video_clip.read_bytes())
    upload = Upload.from_video_file(Job(1, "video"), spooled)
    assert upload.video.dtype == np.uint8 and upload.video.tobytes() == video_clip.read_bytes()
    shipped = pickle.loads(pickle.dumps(upload, protocol=5))  # as Ray serializes it for another process
    spooled.unlink()  # the spool file is gone, as on another node it never was
    stage = DecodeStage(AppSettings())
    from_bytes = stage.run(shipped).frames
    from_file = stage.run(Upload.from_video_file(Job(1, "video"), video_clip)).frames
    assert len(from_bytes) == len(from_file) > 0
    assert all(np.array_equal(a, b) for a, b in zip(from_bytes, from_file))


def test_an_empty_video_file_is_no_frames(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(NoFramesError):
        DecodeStage(AppSettings()).run(Upload.from_video_file(Job(), path))


def test_a_video_is_bounded_by_the_settings(video_clip):
    def run(**frames):
        return DecodeStage(AppSettings.from_dict({"frames": frames})).run(Upload.from_video_file(Job(), video_clip))

    with pytest.raises(TooManyPixelsError, match="160x120"):
        run(max_image_pixels=160 * 120 - 1)
    with pytest.raises(TooManyFramesError, match="more than 5 frames"):
        run(fps=10.0, max_decoded_frames=5)
    with pytest.raises(TooManyFramesError, match="took more than"):
        run(max_decode_s=1e-9)
    assert len(run(max_image_pixels=160 * 120, fps=10.0, max_decoded_frames=30).frames) == 30
