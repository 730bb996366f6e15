"""Decoding is bounded: each frame is reduced as it is decoded, an upload's total pixels are capped.

A 7071x7071 PNG is ~150 KiB on the wire and 143 MiB of RGB once decoded; an
upload's photos are decoded `workers` at a time, a JPEG at the DCT scale that
covers `model_decode_size`, and each is reduced at once to the model input's
size, so an upload holds `workers` full-size photos at most.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from devkit import peak_rss
from serve_app.frames import decode_image, decode_images, sample_video
from serve_app.frames.bounds import (
    DECODE_MAX_PIXELS,
    MODEL_SIZE,
    PATCH_SIZE,
    DecodeTarget,
    fit_pixels,
    model_decode_size,
    model_input_size,
)
from serve_app.vggt.config import PRESETS, preset
from serve_app.vggt.preprocess import preprocess_images, resized_size
from tcp_proxy.errors import BadImageError, TooManyPixelsError

MIB = 1 << 20
HUGE_SIDE = 7071  # 50.0 MP, just under the default per-image limit


@pytest.fixture(scope="module")
def huge_png(media) -> bytes:
    return media.flat_png(HUGE_SIDE, HUGE_SIDE)


def test_the_model_size_is_every_presets_input_size():
    for name in PRESETS:
        config = preset(name)
        assert (config.img_size, config.patch_size) == (MODEL_SIZE, PATCH_SIZE), name


def sizes(count: int, seed: int = 0) -> list[tuple[int, int]]:
    """Phone sizes, extreme aspects and random sizes up to 9000 a side."""
    rng = np.random.default_rng(seed)
    fixed = [(4032, 3024), (3024, 4032), (8064, 6048), (1920, 1080), (1080, 1920), (12000, 3000), (3000, 12000)]
    fixed += [(1, 1), (1, 5000), (5000, 1), (518, 392), (1036, 784), (1037, 785), (1035, 783)]
    return fixed + [tuple(int(side) for side in pair) for pair in rng.integers(1, 9000, (count, 2))]


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_model_input_size_is_the_preprocessing_resize(mode):
    for width, height in sizes(3000):
        assert model_input_size(width, height, mode=mode) == resized_size(width, height, mode), (width, height)


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_model_decode_size_keeps_twice_the_model_input_and_what_the_model_sees(mode):
    for width, height in sizes(3000, seed=1):
        input_width, input_height = model_input_size(width, height, mode=mode)
        reduced = new_width, new_height = model_decode_size(width, height, mode=mode)
        assert new_width <= width and new_height <= height, (width, height, reduced)
        if reduced != (width, height):
            assert new_width >= 2 * input_width and new_height >= 2 * input_height, (width, height, reduced)
            # the smallest: a side at exactly twice its input, or one pixel less would lose the bound
            assert new_width - 2 <= 2 * input_width or new_height - 2 <= 2 * input_height, (width, height, reduced)
        # aspect kept to the pixel or two that the patch rounding needs
        assert min(abs(new_width - new_height * width / height), abs(new_height - new_width * height / width)) <= 2
        # the preprocessing of the reduced frame makes an input of the same size as the full frame's
        assert model_input_size(new_width, new_height, mode=mode) == (input_width, input_height), (width, height)


def test_model_decode_size_of_phone_photos():
    assert model_decode_size(4032, 3024) == (1046, 784)  # the height binds: 3024 -> 392 rows is 28 patches
    assert model_decode_size(3024, 4032) == (1036, 1382)  # crop mode scales the width
    assert model_decode_size(3024, 4032, mode="pad") == (784, 1046)  # pad mode the long side
    assert model_decode_size(4032, 3024, mode="pad") == (1046, 784)
    assert model_decode_size(4032, 3024, 259, oversample=4.0) == (1046, 784)  # model size and factor are inputs


def test_model_decode_size_at_under_and_over_twice_the_model_input():
    assert model_decode_size(1036, 784) == (1036, 784)  # at: kept
    assert model_decode_size(1035, 783) == (1035, 783)  # under: never enlarged
    assert model_decode_size(1037, 785) == (1036, 785)  # over: reduced to the bound
    assert model_decode_size(1037, 785, oversample=1.0) == (518, 393)


def test_model_decode_size_refuses_nonsense():
    for args, kwargs in [((0, 10), {}), ((10, 10), {"mode": "fit"}), ((10, 10), {"oversample": 0.5})]:
        with pytest.raises(ValueError):
            model_decode_size(*args, **kwargs)


def test_a_decode_target_decodes_at_twice_the_model_input_within_the_cap():
    assert DecodeTarget().decode_size(4032, 3024) == (1046, 784)
    tall = DecodeTarget().decode_size(3000, 12000)  # crop mode: 518 wide, so 1036 x 4144 wanted
    assert tall[0] * tall[1] <= DECODE_MAX_PIXELS < 1036 * 4144
    assert DecodeTarget(max_pixels=None).decode_size(3000, 12000) == model_decode_size(3000, 12000)
    assert DecodeTarget(model_size=None).decode_size(4032, 3024) == (2048, 1536)  # the cap alone


def test_a_decode_target_keeps_frames_at_the_model_inputs_size():
    assert DecodeTarget().frame_size(4032, 3024) == (518, 392)
    assert DecodeTarget(mode="pad").frame_size(3024, 4032) == (392, 518)
    assert DecodeTarget().frame_size(3000, 12000) == (518, 2072)  # crop mode crops the rows after
    assert DecodeTarget().frame_size(518, 392) == (518, 392)  # at
    assert DecodeTarget().frame_size(517, 391) == (517, 391)  # under: the preprocessing enlarges it
    assert DecodeTarget().frame_size(519, 393) == (518, 392)  # over
    assert DecodeTarget(model_size=None).frame_size(4032, 3024) == (2048, 1536)  # the cap alone


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_the_preprocessing_leaves_a_frame_of_the_model_inputs_size_as_it_is(mode):
    for width, height in sizes(3000, seed=2):
        size = model_input_size(width, height, mode=mode)
        assert model_input_size(*size, mode=mode) == size, (width, height)


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
    assert frame.shape == (518, 518, 3)  # ... no longer 7071x7071: the model's input
    assert tuple(frame[0, 0]) == (40, 215, 128) and tuple(frame[-1, -1]) == (199, 56, 128)


@pytest.mark.skipif(not peak_rss.available(), reason="reads /proc/self/status")
@pytest.mark.parametrize("workers", [1, 2])
def test_peak_memory_of_many_huge_pngs_is_one_full_decode_plus_reduced_frames(workers):
    count = 6
    full = HUGE_SIDE * HUGE_SIDE * 3  # 143 MiB per decoded photo; 858 MiB for all six at full size
    growth = peak_rss.peak_growth(
        setup=f"from devkit import media as media_files\nfrom serve_app.frames import decode_images\nblob = media_files.flat_png({HUGE_SIDE}, {HUGE_SIDE})",
        work=f"frames = decode_images([blob] * {count}, workers={workers})",
    )
    assert growth >= full * 0.9, "the measurement must see the one full-size decode"
    # photos decoded at once hold at most one 50 MP photo's pixels: whatever the workers, one photo
    # at full size (Pillow holds 4 bytes a pixel: 191 MiB) and the horizontal pass of its bicubic
    # resize (14 MiB); then the reduced frames
    one_decode = HUGE_SIDE * HUGE_SIDE * 4 + 518 * HUGE_SIDE * 4
    bound = one_decode + count * 518 * 518 * 3 + 40 * MIB
    assert growth < bound, f"peak grew by {growth / MIB:.0f} MiB"


@pytest.mark.skipif(not peak_rss.available(), reason="reads /proc/self/status")
def test_a_large_jpeg_is_decoded_at_reduced_scale():
    width, height = 8064, 6048  # a 48 MP phone photo: 186 MiB decoded (Pillow holds 4 bytes a pixel)
    full = width * height * 4
    setup = (
        "import numpy as np\nfrom devkit import media as media_files\nfrom serve_app.frames import decode_image\n"
        "from serve_app.frames.bounds import DecodeTarget\n"
        f"rows = np.linspace(0, 255, {height}, dtype=np.uint8)[:, None, None]\n"
        f"blob = media_files.jpeg_bytes(np.broadcast_to(rows, ({height}, {width}, 3)).copy())\n"
        "del rows"
    )
    # the model wants 1046x784: 1/4 scale (2016x1512, 12 MiB) covers it, 1/8 would not
    growth = peak_rss.peak_growth(setup, "frame = decode_image(blob)\nassert frame.shape == (392, 518, 3)")
    assert growth < full / 8, f"peak grew by {growth / MIB:.0f} MiB: not decoded at 1/4 scale"
    target = (width // 8) * (height // 8)  # a cap that 1/8 scale covers exactly
    work = f"frame = decode_image(blob, target=DecodeTarget(max_pixels={target}))\nassert frame.shape[0] * frame.shape[1] <= {target}"
    smallest = peak_rss.peak_growth(setup, work)
    assert smallest < full / 8, f"peak grew by {smallest / MIB:.0f} MiB: not decoded at 1/8 scale"


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
    full = decode_image(blob, target=None)
    reduced = decode_image(blob, target=DecodeTarget(mode=mode))
    width, height = model_input_size(full.shape[1], full.shape[0], mode=mode)
    assert reduced.shape == (height, width, 3) and width < full.shape[1]
    expected, got = preprocess_images([full], mode), preprocess_images([reduced], mode)
    assert got.shape == expected.shape
    levels = (got - expected).abs() * 255  # grey levels of the 8-bit input
    psnr = 10 * np.log10(255**2 / float(levels.square().mean()))
    assert levels.mean() < 0.5 and psnr > 45, (float(levels.mean()), psnr)  # the goal is 40 dB


@pytest.mark.parametrize("mode", ["crop", "pad"])
def test_the_model_input_of_a_png_is_the_one_its_full_size_decode_gives(media, mode):
    for pixels in (phone_photo(1600, 1200), np.ascontiguousarray(phone_photo(1200, 1600)[:, ::-1])):
        blob = media.png_bytes(pixels)
        full, reduced = decode_image(blob, target=None), decode_image(blob, target=DecodeTarget(mode=mode))
        assert reduced.shape[1] < full.shape[1]
        assert torch.equal(preprocess_images([reduced], mode), preprocess_images([full], mode))


def test_reduction_composites_transparency_and_applies_orientation(media):
    rgba = np.zeros((2000, 3000, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:, :1500, 3] = 255  # left half opaque red, right half transparent
    frame = decode_image(media.png_bytes(rgba))
    assert frame.shape == (350, 518, 3)
    assert tuple(frame[175, 100]) == (200, 0, 0) and tuple(frame[175, 400]) == (255, 255, 255)
    upright = media.quadrants(300, 400)
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # camera held upright: stored turned left
    frame = decode_image(media.jpeg_bytes(stored, orientation=6), target=DecodeTarget(model_size=150))
    assert frame.shape == (196, 150, 3)
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
