"""Decoding is bounded: each frame is reduced as it is decoded, an upload's total pixels are capped.

A 7071x7071 PNG is ~150 KiB on the wire and 143 MiB of RGB once decoded; the
photos of one upload are decoded one at a time and each is reduced to
`DECODE_MAX_PIXELS` at once, so an upload holds one full-size photo at most.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from devkit import peak_rss
from serve_app.frames import decode_image, decode_images, sample_video
from serve_app.frames.bounds import DECODE_MAX_PIXELS, fit_pixels
from serve_app.vggt.preprocess import preprocess_images
from tcp_proxy.errors import BadImageError, TooManyPixelsError

MIB = 1 << 20
HUGE_SIDE = 7071  # 50.0 MP, just under the default per-image limit


@pytest.fixture(scope="module")
def huge_png(media) -> bytes:
    return media.flat_png(HUGE_SIDE, HUGE_SIDE)


@pytest.mark.parametrize(
    ("width", "height"), [(4032, 3024), (3024, 4032), (7071, 7071), (12000, 3000), (1, 10**8), (10**8, 1)]
)
def test_fit_pixels_keeps_the_aspect_within_the_bound(width, height):
    new_width, new_height = fit_pixels(width, height, DECODE_MAX_PIXELS)
    assert new_width * new_height <= DECODE_MAX_PIXELS
    assert new_width <= width and new_height <= height
    if min(width, height) > 100:
        assert new_width / new_height == pytest.approx(width / height, rel=0.002)
        assert new_width * new_height > 0.99 * DECODE_MAX_PIXELS


def test_fit_pixels_never_enlarges():
    assert fit_pixels(1000, 800, DECODE_MAX_PIXELS) == (1000, 800)
    assert fit_pixels(4032, 3024, None) == (4032, 3024)
    assert fit_pixels(4032, 3024, 2048 * 1536) == (2048, 1536)


def test_a_huge_flat_png_decodes_to_the_bound(huge_png):
    assert len(huge_png) < 200 * 1024  # the amplification: a tiny upload ...
    frame = decode_image(huge_png)
    assert frame.shape == (1773, 1773, 3)  # ... no longer 7071x7071
    assert frame.shape[0] * frame.shape[1] <= DECODE_MAX_PIXELS
    assert tuple(frame[0, 0]) == (40, 215, 128) and tuple(frame[-1, -1]) == (199, 56, 128)


@pytest.mark.skipif(not peak_rss.available(), reason="reads /proc/self/status")
def test_peak_memory_of_many_huge_pngs_is_one_full_decode_plus_reduced_frames():
    count = 6
    full = HUGE_SIDE * HUGE_SIDE * 3  # 143 MiB per decoded photo; 858 MiB for all six at full size
    growth = peak_rss.peak_growth(
        setup=f"from devkit import media as media_files\nfrom serve_app.frames import decode_images\nblob = media_files.flat_png({HUGE_SIDE}, {HUGE_SIDE})",
        work=f"frames = decode_images([blob] * {count})",
    )
    assert growth >= full * 0.9, "the measurement must see the one full-size decode"
    # one photo at full size (Pillow holds 4 bytes a pixel: 191 MiB) and its resize, plus the reduced frames
    one_decode = HUGE_SIDE * HUGE_SIDE * 4 + 1773 * HUGE_SIDE * 4
    assert growth < one_decode + count * DECODE_MAX_PIXELS * 3 + 40 * MIB, f"peak grew by {growth / MIB:.0f} MiB"


@pytest.mark.skipif(not peak_rss.available(), reason="reads /proc/self/status")
def test_a_large_jpeg_is_decoded_at_reduced_scale():
    width, height = 8064, 6048  # a 48 MP phone photo: 186 MiB decoded (Pillow holds 4 bytes a pixel)
    full = width * height * 4
    setup = (
        "import numpy as np\nfrom devkit import media as media_files\nfrom serve_app.frames import decode_image\n"
        f"rows = np.linspace(0, 255, {height}, dtype=np.uint8)[:, None, None]\n"
        f"blob = media_files.jpeg_bytes(np.broadcast_to(rows, ({height}, {width}, 3)).copy())\n"
        "del rows"
    )
    target = (width // 8) * (height // 8)  # the bound 1/8 scale covers exactly
    growth = peak_rss.peak_growth(setup, f"frame = decode_image(blob, decode_max_pixels={target})")
    assert growth < full / 8, f"peak grew by {growth / MIB:.0f} MiB: decoded at full size"
    shrunk = peak_rss.peak_growth(setup, f"frame = decode_image(blob)\nassert frame.shape == (1536, 2048, 3)")
    # 1/2 scale (47 MiB), its resize to 2048x1536 and the frame; a full-size decode alone is 186 MiB
    assert shrunk < full * 0.6, f"peak grew by {shrunk / MIB:.0f} MiB: not decoded at 1/2 scale"


def test_the_total_pixels_of_an_upload_are_refused_before_decoding(media):
    blobs = [media.png_claiming_size(4000, 3000)] * 3  # 36 MP in all; the data would not decode
    with pytest.raises(TooManyPixelsError, match="36000000 pixels in all") as info:
        decode_images(blobs, max_request_pixels=35_999_999)
    assert info.value.code == "ERROR_TOO_MANY_PIXELS"
    with pytest.raises(BadImageError, match="image 1 of 3"):  # within the cap: decoded, and damaged
        decode_images(blobs, max_request_pixels=36_000_000)


def test_twenty_48_megapixel_photos_fit_the_default_total(media):
    blobs = [media.png_claiming_size(8064, 6048)] * 20
    with pytest.raises(BadImageError, match="image 1 of 20"):  # past the total, at decoding
        decode_images(blobs)


def test_a_bad_header_is_named_before_the_total_is_checked(media):
    blobs = [media.png_claiming_size(4000, 3000), b"junk"]
    with pytest.raises(BadImageError, match="image 2 of 2"):
        decode_images(blobs, max_request_pixels=1)


def phone_photo(width: int, height: int) -> np.ndarray:
    """Gradients, hard-edged blocks, mid-frequency texture and sensor-like noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x / width * 200, y / height * 180, (x + y) / (width + height) * 120 + 40], -1)
    for _ in range(120):
        top, left = rng.integers(0, height), rng.integers(0, width)
        image[top : top + rng.integers(8, height // 5), left : left + rng.integers(8, width // 5)] = rng.integers(0, 255, 3)
    texture = rng.integers(0, 50, (height // 8, width // 8, 3)).astype(np.float32)
    image += np.repeat(np.repeat(texture, 8, axis=0), 8, axis=1)
    image += rng.normal(0, 4, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def phone_jpeg(media) -> bytes:
    return media.jpeg_bytes(phone_photo(4032, 3024))


@pytest.mark.parametrize(("mode", "orientation"), list(itertools.product(("crop", "pad"), (None, 6))))
def test_the_model_input_of_a_phone_photo_is_nearly_unchanged(media, mode, orientation, phone_jpeg):
    blob = phone_jpeg if orientation is None else media.jpeg_bytes(phone_photo(4032, 3024), orientation=6)
    full = decode_image(blob, decode_max_pixels=None)
    reduced = decode_image(blob)
    assert reduced.shape[0] * reduced.shape[1] == 2048 * 1536 < full.shape[0] * full.shape[1]
    expected, got = preprocess_images([full], mode), preprocess_images([reduced], mode)
    assert got.shape == expected.shape
    levels = (got - expected).abs() * 255  # grey levels of the 8-bit input
    assert levels.mean() < 0.5 and levels.max() <= 8, (float(levels.mean()), float(levels.max()))


def test_reduction_composites_transparency_and_applies_orientation(media):
    rgba = np.zeros((2000, 3000, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :1500, 3] = 255  # left half opaque red, right half transparent
    frame = decode_image(media.png_bytes(rgba), decode_max_pixels=300 * 200)
    assert frame.shape == (200, 300, 3)
    assert tuple(frame[100, 50]) == (200, 0, 0) and tuple(frame[100, 250]) == (255, 255, 255)
    upright = media.quadrants(300, 400)
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # camera held upright: stored turned left
    frame = decode_image(media.jpeg_bytes(stored, orientation=6), decode_max_pixels=150 * 200)
    assert frame.shape == (200, 150, 3)
    assert media.quadrant_colours(frame) == media.quadrant_colours(upright)


def test_video_frames_are_reduced_to_the_bound(video_clip):
    (frame,) = sample_video(video_clip, max_frames=1, decode_max_pixels=80 * 60)
    assert frame.shape == (60, 80, 3)
    (frame,) = sample_video(video_clip, max_frames=1, max_side=100, decode_max_pixels=80 * 60)
    assert frame.shape == (60, 80, 3)
    (frame,) = sample_video(video_clip, max_frames=1)  # 160x120 is within the default bound
    assert frame.shape == (120, 160, 3)
    with pytest.raises(ValueError):
        sample_video(video_clip, decode_max_pixels=-1)
