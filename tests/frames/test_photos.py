"""Photo decoding: orientation, transparency, damaged and oversized images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from serve_app.frames import decode_image, decode_images
from tcp_proxy.errors import BadImageError, NoFramesError, TooManyImagesError


def test_jpeg_is_rgb_uint8(media):
    image = decode_image(media.jpeg_bytes(media.quadrants(80, 60)))
    assert image.shape == (60, 80, 3) and image.dtype == np.uint8
    assert media.quadrant_colours(image) == media.quadrant_colours(media.quadrants(80, 60))


@pytest.mark.parametrize(
    ("orientation", "store"),
    [
        (3, lambda u: np.rot90(u, 2)),
        (6, lambda u: np.rot90(u, 1)),  # camera held upright: stored turned left
        (8, lambda u: np.rot90(u, -1)),
        (2, lambda u: u[:, ::-1]),
    ],
)
def test_exif_orientation_is_applied(media, orientation, store):
    upright = media.quadrants(60, 100)
    blob = media.jpeg_bytes(np.ascontiguousarray(store(upright)), orientation=orientation)
    image = decode_image(blob)
    assert image.shape == upright.shape
    assert media.quadrant_colours(image) == media.quadrant_colours(upright)


def test_png_alpha_is_composited_on_white(media):
    rgba = np.zeros((40, 50, 4), np.uint8)
    rgba[..., 0] = 200  # red everywhere
    rgba[:, :25, 3] = 255  # left half opaque
    rgba[:, 25:, 3] = 0  # right half transparent
    rgba[:20, 25:, 3] = 128  # top right half-transparent
    image = decode_image(media.png_bytes(rgba))
    assert image.shape == (40, 50, 3)
    assert tuple(image[30, 10]) == (200, 0, 0)
    assert tuple(image[30, 40]) == (255, 255, 255)
    assert np.allclose(image[10, 40], (228, 127, 127), atol=2)


def test_palette_and_grey_pngs(media):
    grey = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16))
    buffer = io.BytesIO()
    grey.save(buffer, "PNG")
    image = decode_image(buffer.getvalue())
    assert image.shape == (16, 16, 3) and image[15, 15, 0] == 255
    wide = Image.fromarray(np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)
    buffer = io.BytesIO()
    wide.save(buffer, "PNG")
    assert decode_image(buffer.getvalue())[15, 15, 0] == 255
    palette = Image.fromarray(media.quadrants(32, 32)).convert("P")
    buffer = io.BytesIO()
    palette.save(buffer, "PNG")
    assert decode_image(buffer.getvalue()).shape == (32, 32, 3)


def test_webp(media):
    buffer = io.BytesIO()
    Image.fromarray(media.quadrants(64, 48)).save(buffer, "WEBP", lossless=True)
    assert decode_image(buffer.getvalue()).shape == (48, 64, 3)


def test_heic_from_an_iphone_is_decoded_upright(media):
    """HEIC (HEVC in HEIF), with the sideways storage and EXIF orientation phones use."""
    buffer = io.BytesIO()
    sideways = np.ascontiguousarray(np.rot90(media.quadrants(64, 48)))  # stored 48 wide, 64 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to view"
    Image.fromarray(sideways).save(buffer, "HEIF", quality=95, exif=exif.tobytes())
    upright = decode_image(buffer.getvalue())
    assert upright.shape == (48, 64, 3)
    assert media.quadrant_colours(upright) == media.quadrant_colours(media.quadrants(64, 48))


def test_truncated_jpeg(media):
    blob = media.jpeg_bytes(np.random.default_rng(4).integers(0, 256, (120, 160, 3), dtype=np.uint8))
    with pytest.raises(BadImageError, match="truncated"):
        decode_image(blob[: len(blob) // 2])


@pytest.mark.parametrize("blob", [b"", b"\xff\xd8\xff", b"not an image at all", bytes(range(256)) * 4])
def test_undecodable_bytes(blob):
    with pytest.raises(BadImageError):
        decode_image(blob)


def test_other_formats_are_refused(media):
    buffer = io.BytesIO()
    Image.fromarray(media.quadrants(16, 16)).save(buffer, "BMP")
    with pytest.raises(BadImageError, match="not a decodable image"):
        decode_image(buffer.getvalue())


@pytest.mark.parametrize(("width", "height"), [(10_000, 8_000), (30_000, 30_000)])
def test_pixel_limit_is_checked_before_decoding(media, width, height):
    with pytest.raises(BadImageError, match="too large|more than the limit"):
        decode_image(media.png_claiming_size(width, height), max_pixels=50_000_000)


def test_pixel_limit_is_configurable(media):
    blob = media.jpeg_bytes(media.quadrants(80, 60))
    assert decode_image(blob, max_pixels=4800).shape == (60, 80, 3)
    with pytest.raises(BadImageError, match="4800 pixels"):
        decode_image(blob, max_pixels=4799)


def test_decode_images_keeps_order_and_caps_count(media):
    blobs = [media.jpeg_bytes(np.full((8 + i, 8, 3), 40 * i, np.uint8)) for i in range(3)]
    images = decode_images([blobs[0], bytearray(blobs[1]), memoryview(blobs[2])])
    assert [im.shape[0] for im in images] == [8, 9, 10]
    with pytest.raises(TooManyImagesError):
        decode_images(blobs, max_images=2)
    with pytest.raises(NoFramesError):
        decode_images([])


def test_decode_images_names_the_bad_image(media):
    good = media.jpeg_bytes(media.quadrants(16, 16))
    with pytest.raises(BadImageError, match="image 2 of 3"):
        decode_images([good, b"junk", good])


def test_decode_images_reports_each_photo(media):
    blobs = [media.jpeg_bytes(media.quadrants(16, 16)) for _ in range(3)]
    calls = []
    decode_images(blobs, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def photo_files(media) -> list[bytes]:
    """A JPEG, PNG, WebP and HEIC photo, each larger than the model input, the JPEG stored sideways."""
    pixels = [media.quadrants(1600, 1200 + 20 * i) for i in range(4)]
    stored = np.ascontiguousarray(np.rot90(pixels[0], 1))  # camera held upright: stored turned left
    files = [media.jpeg_bytes(stored, orientation=6), media.png_bytes(pixels[1])]
    for image, form in ((pixels[2], "WEBP"), (pixels[3], "HEIF")):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, form, quality=90)
        files.append(buffer.getvalue())
    return files


def test_each_format_is_reduced_to_what_the_model_needs(media):
    from serve_app.frames.bounds import model_input_size

    frames = decode_images(photo_files(media), workers=1)
    upright = [(1600, 1200), (1600, 1220), (1600, 1240), (1600, 1260)]  # the JPEG stored 1200 x 1600
    assert [frame.shape[1::-1] for frame in frames] == [model_input_size(w, h) for w, h in upright]
    assert all(frame.shape[1] < width for frame, (width, _) in zip(frames, upright))
    assert [media.quadrant_colours(frame) for frame in frames[1:]] == [media.quadrant_colours(frames[0])] * 3


def test_photos_decoded_on_threads_are_those_decoded_one_at_a_time(media):
    blobs = photo_files(media) * 2
    calls = []
    on_threads = decode_images(blobs, workers=3, progress=lambda done, total: calls.append((done, total)))
    one_at_a_time = decode_images(blobs, workers=1)
    assert len(on_threads) == len(blobs) and all(np.array_equal(a, b) for a, b in zip(on_threads, one_at_a_time))
    assert calls == [(done, 8) for done in range(1, 9)]


def test_a_damaged_photo_decoded_on_threads_is_named(media):
    good = media.jpeg_bytes(media.quadrants(160, 120))
    damaged = media.jpeg_bytes(np.random.default_rng(4).integers(0, 256, (120, 160, 3), dtype=np.uint8))
    blobs = [good, good, damaged[: len(damaged) // 2], good, good]
    with pytest.raises(BadImageError, match="image 3 of 5: the JPEG data is damaged or truncated"):
        decode_images(blobs, workers=2)
