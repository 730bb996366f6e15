"""The `frames.*` limits of docs/PROTOCOL.md section 5 in the real decode stage: at, under and over each.

Real encoded photos and a real H.264 video go through `DecodeStage`, built
from `AppSettings` as the service builds it, so a limit that moves by one, or
a setting that no longer reaches the decoder, fails here.
"""

from __future__ import annotations

import pytest

from serve_app.config import AppSettings, FrameSettings
from serve_app.stages import Job, Upload
from serve_app.stages.decode import DecodeStage
from tcp_proxy.errors import ServiceError

APP_MAX_IMAGES = 20  # what the phone app sends at most: frames.max_images' default
VIDEO_SIDE = (160, 120)
VIDEO_FRAMES = 30  # 3 s at 10 fps


def decoded(images=(), video=None, **frames):
    """The decode stage's frames for photos or a video, with `frames.*` settings `frames`."""
    stage = DecodeStage(AppSettings(frames=FrameSettings(**frames)))
    upload = Upload.from_video_file(Job(), video) if video is not None else Upload(Job(), images=tuple(images))
    return stage.run(upload).frames


def refusal(images=(), video=None, **frames) -> str | None:
    """The error code the decode stage answers, or None when it decodes."""
    try:
        decoded(images, video, **frames)
    except ServiceError as exc:
        return exc.code
    return None


@pytest.fixture(scope="module")
def small_jpegs(media) -> list[bytes]:
    return [media.jpeg_bytes(media.numbered_frame(i, 32, 24)) for i in range(APP_MAX_IMAGES + 1)]


@pytest.fixture(scope="module")
def clip(media, tmp_path_factory):
    frames = [media.numbered_frame(i, *VIDEO_SIDE) for i in range(VIDEO_FRAMES)]
    return media.write_video(tmp_path_factory.mktemp("bounds") / "clip.mp4", frames, fps=10)


# -- photos ---------------------------------------------------------------------
@pytest.mark.parametrize("count", [APP_MAX_IMAGES - 1, APP_MAX_IMAGES])
def test_the_default_takes_up_to_the_apps_twenty_photos(small_jpegs, count):
    assert len(decoded(small_jpegs[:count])) == count


def test_the_default_refuses_twenty_one_photos(small_jpegs):
    assert refusal(small_jpegs[: APP_MAX_IMAGES + 1]) == "ERROR_TOO_MANY_IMAGES"


@pytest.mark.parametrize("max_images, code", [(2, "ERROR_TOO_MANY_IMAGES"), (3, None), (4, None)])
def test_max_images_at_under_and_over(small_jpegs, max_images, code):
    assert refusal(small_jpegs[:3], max_images=max_images) == code


@pytest.mark.parametrize(
    "size, code", [((9, 11), None), ((10, 10), None), ((101, 1), "ERROR_BAD_IMAGE")], ids=["99", "100", "101"]
)
def test_max_image_pixels_of_a_photo_at_under_and_over(media, size, code):
    assert refusal([media.flat_png(*size)], max_image_pixels=100) == code


@pytest.mark.parametrize("max_request_pixels, code", [(199, "ERROR_TOO_MANY_PIXELS"), (200, None), (201, None)])
def test_max_request_pixels_at_under_and_over(media, max_request_pixels, code):
    photos = [media.flat_png(10, 10), media.flat_png(20, 5)]  # 200 pixels in all
    assert refusal(photos, max_request_pixels=max_request_pixels) == code


# -- a video --------------------------------------------------------------------
@pytest.mark.parametrize(
    "max_image_pixels, code", [(160 * 120 - 1, "ERROR_TOO_MANY_PIXELS"), (160 * 120, None), (160 * 120 + 1, None)]
)
def test_max_image_pixels_of_a_video_frame_at_under_and_over(clip, max_image_pixels, code):
    assert refusal(video=clip, max_image_pixels=max_image_pixels) == code


@pytest.mark.parametrize("max_frames, kept", [(VIDEO_FRAMES - 1, VIDEO_FRAMES - 1), (VIDEO_FRAMES, VIDEO_FRAMES), (VIDEO_FRAMES + 1, VIDEO_FRAMES)])
def test_max_frames_thins_only_over_it(clip, max_frames, kept):
    assert len(decoded(video=clip, fps=10.0, max_frames=max_frames)) == kept


@pytest.mark.parametrize(
    "max_decoded_frames, code",
    [(VIDEO_FRAMES - 1, "ERROR_TOO_MANY_FRAMES"), (VIDEO_FRAMES, None), (VIDEO_FRAMES + 1, None)],
)
def test_max_decoded_frames_at_under_and_over(clip, max_decoded_frames, code):
    # every frame is a sample at 10 per second, so all 30 are decoded
    assert refusal(video=clip, fps=10.0, max_decoded_frames=max_decoded_frames) == code


@pytest.mark.parametrize("decode_max_pixels", [160 * 120 - 1, 160 * 120, 160 * 120 + 1])
def test_decode_max_pixels_reduces_only_a_video_frame_over_it(clip, decode_max_pixels):
    for frame in decoded(video=clip, decode_max_pixels=decode_max_pixels):
        height, width = frame.shape[:2]
        if decode_max_pixels >= 160 * 120:
            assert (width, height) == VIDEO_SIDE
        else:
            assert width * height <= decode_max_pixels and width > height


@pytest.mark.parametrize("max_side, long_side", [(159, 159), (160, 160), (161, 160)])
def test_max_side_reduces_only_a_frame_over_it(clip, max_side, long_side):
    assert {max(f.shape[:2]) for f in decoded(video=clip, max_side=max_side)} == {long_side}


@pytest.mark.parametrize("elapsed_s, code", [(119.5, None), (120.0, None), (120.5, "ERROR_TOO_MANY_FRAMES")])
def test_the_default_max_decode_s_refuses_only_a_decode_past_120_s(elapsed_s, code):
    from serve_app.frames.video_limits import DecodeBudget, VideoLimits

    now = [1000.0]
    limits = FrameSettings()
    budget = DecodeBudget(VideoLimits(max_seconds=limits.max_decode_s), clock=lambda: now[0])
    now[0] += elapsed_s
    try:
        budget.check_time()
    except ServiceError as exc:
        assert exc.code == code
    else:
        assert code is None
