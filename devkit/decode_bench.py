"""Photos to model input: time, quality and peak memory of the decode, against plain Pillow in one run.

    .venv/bin/python scripts/bench_decode.py [--photos 20] [--width 4032] [--height 3024] [--repeat 3]
                                             [--mode crop] [--count 20] [--side 7071]

1. Speed and memory. `--photos` natural-looking phone photos
   (`devkit.media.natural_photo`, a quality-90 JPEG each, ~4 MB at
   4032x3024) are decoded by each variant, the variants taking turns
   `--repeat` times in this process: the best wall time (and the CPU time of
   that run, all threads) is printed, and the time as a ratio to the
   baseline's; then each variant once more in a fresh process for the growth
   of its peak resident set (VmHWM, devkit/peak_rss.py):
   * pillow: `Image.open(f).convert("RGB")`, one photo after another, the
     baseline: a plain full-size decode;
   * previous: the decode the service had before (each photo to 2048x1536,
     `DecodeTarget(model_size=None)`, one thread);
   * model, 1 thread: `decode_images` reducing to what the model needs
     (`serve_app.frames.bounds.model_decode_size`), one photo at a time;
   * model: the same on `frames.decode_workers` threads (one per CPU), the
     service's decode.
2. Quality. For each photo, the model input (`serve_app.vggt.preprocess`,
   `--mode`) made from the service's frame against the one made from the
   full-size decode (the upstream way: the full-size image, resized once by
   the preprocessing): PSNR and the mean and largest colour difference in
   grey levels. Beside the phone photos: `devkit.media.resolution_chart` as
   a JPEG (as stored and turned by EXIF orientation 6) and as a PNG, and a
   phone photo as a PNG (formats that are decoded at full size, then reduced).
3. Huge PNGs. A flat PNG of `--side` x `--side` pixels (~150 KiB at 7071,
   143 MiB decoded) sent `--count` times: the peak with the service's bound
   against every frame kept at full size (`target=None`).

Linux only (/proc/self/status).
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from devkit.peak_rss import MeasuredCodeFailed, measure_in_process

MiB = 1024 * 1024
PHOTO_VARIANTS = ("pillow", "previous", "model, 1 thread", "model")
PNG_VARIANTS = ("bounded", "unbounded")

_PHOTO_SETUP = """
from devkit.decode_bench import decode_variant, photo_files

blobs = photo_files({folder!r})
decode_variant({variant!r}, blobs[:2], {mode!r})  # plugins loaded once
"""
_PHOTO_WORK = """
frames = decode_variant({variant!r}, blobs, {mode!r})
print(sum(getattr(frame, "nbytes", 0) for frame in frames))
"""
_PNG_SETUP = """
from serve_app.config import FrameSettings
from serve_app.frames import decode_images
from serve_app.frames.bounds import DecodeTarget

blobs = [open({path!r}, "rb").read()] * {count}
limits = FrameSettings()
"""
_PNG_DECODE = """
frames = decode_images(blobs, max_images={count}, max_pixels=limits.max_image_pixels, max_request_pixels=10**12,
                       target={target}, workers=limits.decode_workers)
print(sum(frame.nbytes for frame in frames))
"""


def run(photos: int, width: int, height: int, repeat: int, mode: str, count: int, side: int) -> None:
    """All three parts, printed as tables."""
    from devkit import media

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for index in range(photos):
            (folder / f"{index:02d}.jpg").write_bytes(media.jpeg_bytes(media.natural_photo(width, height, index), quality=90))
        sizes = [path.stat().st_size for path in folder.glob("*.jpg")]
        print(f"{photos} photos of {width}x{height}, quality-90 JPEG, {np.mean(sizes) / 1e6:.1f} MB each on average", flush=True)
        speed_and_memory(folder, repeat, mode)
        quality(folder, width, height, mode)
    huge_pngs(count, side)


def photo_files(folder: str | Path) -> list[bytes]:
    """The bytes of the JPEGs of `folder`, by name."""
    return [path.read_bytes() for path in sorted(Path(folder).glob("*.jpg"))]


def decode_variant(variant: str, blobs: list[bytes], mode: str) -> list:
    """The photos decoded the way `variant` names (module docstring)."""
    from PIL import Image

    from serve_app.config import FrameSettings
    from serve_app.frames import decode_images
    from serve_app.frames.bounds import DecodeTarget

    if variant == "pillow":
        return [Image.open(io.BytesIO(blob)).convert("RGB").size for blob in blobs]
    limits = FrameSettings()
    if variant == "previous":
        target, workers = DecodeTarget(model_size=None, max_pixels=2048 * 1536), 1
    else:
        target = DecodeTarget(mode=mode, oversample=limits.decode_oversample, max_pixels=limits.decode_max_pixels)
        workers = 1 if variant == "model, 1 thread" else limits.decode_workers
    return decode_images(blobs, max_images=len(blobs), max_request_pixels=10**12, target=target, workers=workers)


def speed_and_memory(folder: Path, repeat: int, mode: str) -> dict[str, tuple[float, float, int, int]]:
    """{variant: (best seconds, its CPU seconds, peak growth, frame bytes)}; printed."""
    from serve_app.config import FrameSettings
    from serve_app.frames.parallel import available_workers

    blobs = photo_files(folder)
    for variant in PHOTO_VARIANTS:
        decode_variant(variant, blobs[:2], mode)  # plugins loaded, caches warm
    best = {variant: (math.inf, 0.0) for variant in PHOTO_VARIANTS}
    for _ in range(repeat):  # taking turns, so a change in the machine's load falls on every variant
        for variant in PHOTO_VARIANTS:
            wall, cpu = time.perf_counter(), time.process_time()
            frames = decode_variant(variant, blobs, mode)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            del frames
            best[variant] = min(best[variant], (wall, cpu))
    rows = {}
    for variant in PHOTO_VARIANTS:
        setup = _PHOTO_SETUP.format(folder=str(folder), variant=variant, mode=mode)
        try:
            growth, printed = measure_in_process(setup, _PHOTO_WORK.format(variant=variant, mode=mode), timeout=1800)
        except MeasuredCodeFailed as exc:
            raise SystemExit(f"bench_decode: the {variant} decode failed:\n{exc.stderr}") from None
        rows[variant] = (*best[variant], growth, int(printed[-1]))
    workers = available_workers(FrameSettings().decode_workers)
    load = os.getloadavg()[0]
    print(f"\nbest of {repeat}; model = {workers} threads (frames.decode_workers); ratio = time / pillow's; load {load:.1f}")
    print("| variant | decode s | ratio | CPU s | peak growth MiB | frames MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for variant, (seconds, cpu, growth, kept) in rows.items():
        ratio = seconds / rows["pillow"][0]
        print(f"| {variant} | {seconds:.2f} | {ratio:.2f} | {cpu:.2f} | {growth / MiB:.0f} | {kept / MiB:.0f} |", flush=True)
    return rows


def model_input_difference(blob: bytes, mode: str) -> tuple[float, float, float]:
    """(PSNR dB, mean, largest colour difference in grey levels) of the model input made from the
    service's frame of `blob` against the one made from its full-size decode."""
    from serve_app.config import FrameSettings
    from serve_app.frames import decode_image
    from serve_app.frames.bounds import DecodeTarget
    from serve_app.vggt.preprocess import preprocess_images

    limits = FrameSettings()
    target = DecodeTarget(mode=mode, oversample=limits.decode_oversample, max_pixels=limits.decode_max_pixels)
    reference = preprocess_images([decode_image(blob, target=None)], mode)
    served = preprocess_images([decode_image(blob, target=target)], mode)
    if served.shape != reference.shape:
        raise SystemExit(f"bench_decode: model input {tuple(served.shape)} against {tuple(reference.shape)}")
    levels = (served - reference).abs().mul_(255)
    mse = float(levels.square().mean())
    psnr = math.inf if mse == 0 else 10 * math.log10(255**2 / mse)
    return psnr, float(levels.mean()), float(levels.max())


def quality(folder: Path, width: int, height: int, mode: str) -> list[float]:
    """Print the model-input difference of every photo; the PSNRs, in the order printed."""
    from PIL import Image

    from devkit import media

    cases = [(f"phone photo {path.stem}", path.read_bytes()) for path in sorted(folder.glob("*.jpg"))]
    chart = media.resolution_chart(width, height)
    sideways = np.ascontiguousarray(np.rot90(media.resolution_chart(height, width), 1))
    cases += [
        ("chart, JPEG", media.jpeg_bytes(chart, quality=90)),
        ("chart, JPEG turned (EXIF 6)", media.jpeg_bytes(sideways, orientation=6, quality=90)),
        ("chart, PNG", media.png_bytes(chart)),
        ("phone photo 00, PNG", media.png_bytes(np.asarray(Image.open(io.BytesIO(cases[0][1])).convert("RGB")))),
    ]
    print(f"\nmodel input ({mode} mode) from the service's frame against from the full-size decode")
    print("| photo | PSNR dB | mean colour diff | max colour diff |")
    print("| --- | --- | --- | --- |")
    psnrs = []
    for name, blob in cases:
        psnr, mean, largest = model_input_difference(blob, mode)
        psnrs.append(psnr)
        print(f"| {name} | {psnr:.1f} | {mean:.2f} | {largest:.0f} |")
    print(f"lowest PSNR {min(psnrs):.1f} dB", flush=True)
    return psnrs


def huge_pngs(count: int, side: int) -> dict[str, tuple[int, int]]:
    """{variant: (peak growth, frame bytes)} of decoding `count` flat PNGs of `side` x `side`; printed."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flat.png"
        Image.new("RGB", (side, side), (90, 160, 200)).save(path, optimize=True)
        print(f"\n{count} x {side}x{side} PNG of {path.stat().st_size / 1024:.0f} KiB each")
        rows = {}
        for variant in PNG_VARIANTS:
            target = "DecodeTarget()" if variant == "bounded" else "None"
            setup = _PNG_SETUP.format(path=str(path), count=count)
            try:
                growth, printed = measure_in_process(setup, _PNG_DECODE.format(count=count, target=target), timeout=900)
            except MeasuredCodeFailed as exc:
                raise SystemExit(f"bench_decode: the {variant} decode failed:\n{exc.stderr}") from None
            rows[variant] = (growth, int(printed[-1]))
    for variant, (peak, frames) in rows.items():
        print(f"{variant:>9}: peak growth {peak / MiB:7.0f} MiB, frames {frames / MiB:7.0f} MiB")
    print(f"bounded / unbounded peak: {rows['bounded'][0] / rows['unbounded'][0]:.3f}")
    return rows
