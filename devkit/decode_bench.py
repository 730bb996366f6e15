"""Peak memory of decoding an upload of huge, highly compressed photos, bounded against unbounded.

    .venv/bin/python scripts/bench_decode.py [--count 20] [--side 7071]

A flat PNG of `--side` x `--side` pixels (~150 KiB on the wire at 7071,
143 MiB once decoded) is sent `--count` times in one upload, as an attacker
would. Each variant decodes it with `serve_app.frames.decode_images` in a
fresh process and reports the growth of that process's peak resident set
(VmHWM, devkit/peak_rss.py; Pillow's pixels are invisible to tracemalloc)
and the bytes of the frames it returns:

* bounded: the service's settings (every photo reduced to
  `frames.decode_max_pixels` as it is decoded);
* unbounded: `decode_max_pixels=None`, every frame kept at full size (how
  uploads were decoded before the bound), the baseline of the same run.

Prints both and their ratio. Linux only (/proc/self/status).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from devkit.peak_rss import MeasuredCodeFailed, measure_in_process

VARIANTS = ("bounded", "unbounded")
MiB = 1024 * 1024

_SETUP = """
from serve_app.config import FrameSettings
from serve_app.frames import decode_images

blobs = [open({path!r}, "rb").read()] * {count}
limits = FrameSettings()
"""
_DECODE = """
frames = decode_images(
    blobs,
    max_images={count},
    max_pixels=limits.max_image_pixels,
    max_request_pixels=10**12,
    decode_max_pixels={decode_max_pixels},
)
print(sum(frame.nbytes for frame in frames))
"""


def measure(path: Path, count: int, variant: str) -> tuple[int, int]:
    """(peak growth, frame bytes) of one decode of `count` copies of `path` in a fresh process."""
    bound = "limits.decode_max_pixels" if variant == "bounded" else "None"
    setup = _SETUP.format(path=str(path), count=count)
    try:
        growth, printed = measure_in_process(setup, _DECODE.format(count=count, decode_max_pixels=bound), timeout=900)
    except MeasuredCodeFailed as exc:
        raise SystemExit(f"bench_decode: the {variant} decode failed:\n{exc.stderr}") from None
    return growth, int(printed[-1])


def run(count: int, side: int) -> None:
    """Write the flat PNG, decode it both ways, print the peaks and their ratio."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flat.png"
        Image.new("RGB", (side, side), (90, 160, 200)).save(path, optimize=True)
        print(f"{count} x {side}x{side} PNG of {path.stat().st_size / 1024:.0f} KiB each")
        rows = {variant: measure(path, count, variant) for variant in VARIANTS}
    for variant, (peak, frames) in rows.items():
        print(f"{variant:>9}: peak growth {peak / MiB:7.0f} MiB, frames {frames / MiB:7.0f} MiB")
    print(f"bounded / unbounded peak: {rows['bounded'][0] / rows['unbounded'][0]:.3f}")
