"""Synthetic videos and photos for the tests, benchmarks and checks, written with PyAV/PIL.

Every numbered video frame carries its own index as a row of black/white
blocks (`stamp_index` / `read_index`), which survives lossy compression, so a
test can tell exactly which frames a sampler returned. `synthetic_photos` and
`synthetic_video` make larger moving gradients for the benchmarks.
"""

from __future__ import annotations

import io
import struct
import zlib
import itertools
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

WIDTH, HEIGHT = 160, 120
BITS = 10  # frame indices up to 1023
BAND = 24  # rows at the top of a stored frame that hold the index


def stamp_index(image: np.ndarray, index: int) -> np.ndarray:
    """Write `index` into the top band of an [H, W, 3] image, in place."""
    block = image.shape[1] // BITS
    for bit in range(BITS):
        value = 255 if (index >> bit) & 1 else 0
        image[:BAND, bit * block : (bit + 1) * block] = value
    return image


def read_index(image: np.ndarray) -> int:
    """The index `stamp_index` wrote (image as stored, not rotated)."""
    block = image.shape[1] // BITS
    index = 0
    for bit in range(BITS):
        patch = image[4 : BAND - 4, bit * block + 3 : (bit + 1) * block - 3]
        if patch.mean() > 128:
            index |= 1 << bit
    return index


def numbered_frame(index: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """A mid-grey frame whose top band holds its index."""
    image = np.full((height, width, 3), 96, np.uint8)
    image[BAND:, :, 1] = (index * 37) % 200  # some change between frames
    return stamp_index(image, index)


def textured_frame(index: int, blur: float, seed: int = 0) -> np.ndarray:
    """A numbered frame over random texture, Gaussian-blurred by `blur` px."""
    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    if blur > 0:
        texture = cv2.GaussianBlur(texture, (0, 0), blur)
    return stamp_index(texture, index)


def quadrants(width: int, height: int) -> np.ndarray:
    """An image with red, green, blue and white quadrants (TL, TR, BL, BR)."""
    image = np.zeros((height, width, 3), np.uint8)
    h, w = height // 2, width // 2
    image[:h, :w] = (255, 0, 0)
    image[:h, w:] = (0, 255, 0)
    image[h:, :w] = (0, 0, 255)
    image[h:, w:] = (255, 255, 255)
    return image


def quadrant_colours(image: np.ndarray) -> list[tuple[int, int, int]]:
    """Mean colour at the centre of each quadrant (TL, TR, BL, BR), rounded to 0/255."""
    height, width = image.shape[:2]
    centres = [(height // 4, width // 4), (height // 4, 3 * width // 4),
               (3 * height // 4, width // 4), (3 * height // 4, 3 * width // 4)]
    out = []
    for y, x in centres:
        patch = image[y - 3 : y + 4, x - 3 : x + 4].reshape(-1, 3).mean(axis=0)
        out.append(tuple(255 if v > 128 else 0 for v in patch))
    return out


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    times: Sequence[float] | None = None,
    fps: int = 30,
    codec: str = "libx264",
    rotation: float | None = None,
    hflip: bool = False,
    gop: int | None = 12,
    b_frames: int = 2,
) -> Path:
    """Encode RGB frames to `path` (container from the suffix), one at a time.

    `times` (seconds) gives each frame's timestamp, for variable frame rate;
    otherwise frames are 1/fps apart. `rotation` (degrees counter-clockwise,
    as FFmpeg reports it) and `hflip` are stored as the display matrix.
    `gop=None` leaves keyframes and B-frames to the encoder's defaults.
    """
    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    time_base = Fraction(1, 1000) if times is not None else Fraction(1, fps)
    params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={b_frames}"
    options = {}
    if gop is not None and codec == "libx264":
        options = {"x264-params": params}
    elif gop is not None and codec == "libx265":
        options = {"x265-params": params + ":log-level=error"}
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        if rotation is not None or hflip:
            stream.set_display_rotation(rotation or 0, hflip=hflip)
        for i, image in enumerate(itertools.chain([first], frames)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = round(times[i] * 1000) if times is not None else i
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def gradient_scene(width: int, height: int, shift: int) -> np.ndarray:
    """A colour gradient [H, W, 3] moved `shift` pixels to the left."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x + shift) % 256, (y * 255 // height), ((x + y + 2 * shift) * 3) % 256], axis=-1)
    return img.astype(np.uint8)


def synthetic_photos(count: int, width: int, height: int) -> list[bytes]:
    """`count` JPEGs (quality 90) of the gradient scene, each shifted further."""
    blobs = []
    for i in range(count):
        out = io.BytesIO()
        Image.fromarray(gradient_scene(width, height, i * 17)).save(out, format="JPEG", quality=90)
        blobs.append(out.getvalue())
    return blobs


def natural_photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A scene with a natural image's statistics: detail at every scale from 1.5 px to a third of
    the frame with equal contrast an octave (a 1/f spectrum) in correlated colours, softened like a
    phone's lens and demosaic (Gaussian, sigma 0.8 px), hard-edged objects and sensor noise.
    At 4032x3024 it is ~4 MB as a quality-90 JPEG, like a phone's photo."""
    rng = np.random.default_rng(seed)
    scene = np.zeros((height, width, 3), np.float32)
    cell = 1.5
    while cell < max(width, height) / 3:
        coarse = rng.standard_normal((int(height / cell) + 2, int(width / cell) + 2, 3), dtype=np.float32)
        coarse[..., 1] = coarse[..., 0]  # colours follow the brightness ...
        coarse[..., 0::2] = coarse[..., 0::2] * 0.35 + coarse[..., 1:2]  # ... with some of their own
        scene += cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        cell *= 2
    scene = cv2.GaussianBlur(scene * (40 / scene.std()) + 120, (0, 0), 0.8)
    for _ in range(40):  # objects: patches with sharp edges
        top, left = rng.integers(0, height), rng.integers(0, width)
        bottom, right = top + rng.integers(height // 40, height // 6), left + rng.integers(width // 40, width // 6)
        scene[top:bottom, left:right] *= rng.uniform(0.4, 1.4, 3).astype(np.float32)
    scene += rng.standard_normal(scene.shape, dtype=np.float32) * 2.0
    return np.clip(scene, 0, 255).astype(np.uint8)


def resolution_chart(width: int, height: int) -> np.ndarray:
    """A high-frequency test chart: a colour zone plate whose frequency reaches Nyquist at the
    corners, with bands of 1-, 2- and 3-pixel black and white lines, both ways, along the edges."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    radius2 = (x - width / 2) ** 2 + (y - height / 2) ** 2
    zone = np.cos(np.pi * radius2 / (2 * np.sqrt(radius2.max())))  # local frequency r / 2R cycles/px
    chart = np.stack([zone, np.roll(zone, width // 7, axis=1), -zone], -1) * 127.5 + 127.5
    band = max(1, min(width, height) // 12)
    for i, period in enumerate((2, 4, 6)):
        lines = ((np.arange(width) // (period // 2)) % 2 * 255).astype(np.float32)
        chart[i * band : (i + 1) * band] = lines[None, :, None]
        rows = ((np.arange(height) // (period // 2)) % 2 * 255).astype(np.float32)
        chart[:, i * band : (i + 1) * band] = rows[:, None, None]
    return np.clip(chart, 0, 255).astype(np.uint8)


def synthetic_video(path: Path, seconds: float, width: int, height: int, fps: int = 30) -> Path:
    """An H.264 clip of the gradient scene panning, with the encoder's default keyframes."""
    frames = (gradient_scene(width, height, i * 2) for i in range(int(seconds * fps)))
    return write_video(path, frames, fps=fps, gop=None)


def textured_scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth noise at four scales, from blobs to fine grain: detail like a real scene at every size."""
    rng = np.random.default_rng(seed)
    scene = np.full((height, width, 3), 128.0, np.float32)
    for cell, amplitude in ((64, 90), (16, 50), (4, 30), (1.5, 20)):
        coarse = rng.standard_normal((int(height / cell) + 2, int(width / cell) + 2, 3)).astype(np.float32)
        scene += amplitude * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(scene, 0, 255).astype(np.uint8)


def phone_video(
    path: Path,
    seconds: float = 60.0,
    width: int = 3840,
    height: int = 2160,
    fps: int = 30,
    codec: str = "libx264",
    gop: int = 30,
    bit_rate: int = 40_000_000,
) -> Path:
    """A clip like a phone's: the textured scene panning 4 px a frame, a keyframe every `gop` frames,
    no B-frames, `bit_rate` bits/s (phones record 4K at 40-50 Mbit/s H.264). Even sizes only."""
    pan = 4
    count = round(seconds * fps)
    yuv = cv2.cvtColor(textured_scene(width + pan * count, height), cv2.COLOR_RGB2YUV)
    luma, cb, cr = yuv[:, :, 0], yuv[::2, ::2, 1], yuv[::2, ::2, 2]
    kbits = bit_rate // 1000
    params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:vbv-maxrate={kbits}:vbv-bufsize={2 * kbits}"
    options = {"libx264": {"preset": "superfast", "x264-params": params},
               "libx265": {"preset": "ultrafast", "x265-params": params + ":log-level=error"}}[codec]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt, stream.bit_rate = width, height, "yuv420p", bit_rate
        planes = np.empty((height * 3 // 2, width), np.uint8)  # yuv420p: Y rows, then U and V
        chroma = planes[height:].reshape(2, height // 2, width // 2)
        for i in range(count):
            x = i * pan
            planes[:height] = luma[:, x : x + width]
            chroma[0] = cb[:, x // 2 : x // 2 + width // 2]
            chroma[1] = cr[:, x // 2 : x // 2 + width // 2]
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def understate_duration(data: bytes, seconds: float) -> bytes:
    """An MP4/MOV whose `mvhd`, `tkhd` and `mdhd` boxes claim `seconds` of video, its frames unchanged.

    A container that understates its length (edit lists and sample tables are left alone, so
    every frame still plays at its own time).
    """
    out = bytearray(data)
    timescale = {"movie": 1}
    for kind, start in _boxes(out, 0, len(out), containers=(b"moov", b"trak", b"mdia")):
        version = out[start]
        wide = version == 1  # 64-bit times and durations
        if kind == b"mvhd":
            at = start + 4 + (16 if wide else 8)
            timescale["movie"] = struct.unpack_from(">I", out, at)[0]
            _put_duration(out, at + 4, wide, round(seconds * timescale["movie"]))
        elif kind == b"tkhd":  # in the movie's timescale; mvhd comes first in moov
            _put_duration(out, start + 4 + (24 if wide else 16), wide, round(seconds * timescale["movie"]))
        elif kind == b"mdhd":
            at = start + 4 + (16 if wide else 8)
            _put_duration(out, at + 4, wide, round(seconds * struct.unpack_from(">I", out, at)[0]))
    return bytes(out)


def _boxes(data: bytearray, begin: int, end: int, containers: tuple[bytes, ...]):
    """(type, offset of its payload) of every box in data[begin:end], descending into `containers`."""
    at = begin
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif size == 0:
            size = end - at
        if size < header:
            return
        if kind in containers:
            yield from _boxes(data, at + header, at + size, containers)
        else:
            yield kind, at + header
        at += size


def _put_duration(data: bytearray, at: int, wide: bool, value: int) -> None:
    struct.pack_into(">Q" if wide else ">I", data, at, value)


def load_photos(folder: str) -> list[bytes]:
    """The bytes of the JPEG, PNG and WebP files of `folder`, by name."""
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    return [p.read_bytes() for p in paths]


def decode_all(path: Path) -> list[tuple[float, np.ndarray]]:
    """Every frame of a video as (time in seconds, stored RGB), plainly decoded."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]


def jpeg_bytes(image: np.ndarray, orientation: int | None = None, quality: int = 92) -> bytes:
    """JPEG-encode an RGB image, optionally with an EXIF orientation tag."""
    buffer = io.BytesIO()
    pil = Image.fromarray(image)
    if orientation is None:
        pil.save(buffer, "JPEG", quality=quality)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        pil.save(buffer, "JPEG", quality=quality, exif=exif.tobytes())
    return buffer.getvalue()


def png_bytes(image: np.ndarray) -> bytes:
    """PNG-encode an RGB or RGBA uint8 image."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    return buffer.getvalue()


def flat_png(width: int, height: int) -> bytes:
    """An RGB PNG of horizontal bands, written row by row: a 7071x7071 one is ~150 KiB.

    The rows are compressed as they are made, so a huge image costs no memory here.
    """
    compressor = zlib.compressobj(9)
    parts = []
    for y in range(height):
        level = 40 + 160 * y // height
        parts.append(compressor.compress(b"\x00" + bytes((level, 255 - level, 128)) * width))
    parts.append(compressor.flush())
    return _png(width, height, colour_type=2, data=b"".join(parts))


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny grey PNG whose header claims `width` x `height` pixels; its data holds 4 rows of 4."""
    return _png(width, height, colour_type=0, data=zlib.compress(b"\x00" * 5 * 4))


def _png(width: int, height: int, colour_type: int, data: bytes) -> bytes:
    """PNG bytes: 8-bit samples, `colour_type` 0 grey or 2 RGB, `data` the compressed rows."""
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
