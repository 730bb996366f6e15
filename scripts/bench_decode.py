"""Peak memory of decoding an upload of huge, highly compressed photos, bounded against unbounded.

    .venv/bin/python scripts/bench_decode.py [--count 20] [--side 7071]

A flat PNG of `--side` x `--side` pixels (~150 KiB on the wire at 7071,
143 MiB once decoded) is sent `--count` times in one upload, as an attacker
would. Each variant decodes it with `serve_app.frames.decode_images` in a
fresh process and reports the growth of that process's peak resident set
(VmHWM; Pillow's pixels are invisible to tracemalloc) and the bytes of the
frames it returns:

* bounded: the service's settings (every photo reduced to
  `frames.decode_max_pixels` as it is decoded);
* unbounded: `decode_max_pixels=None`, every frame kept at full size (how
  uploads were decoded before the bound), the baseline of the same run.

Prints both and their ratio. Linux only (/proc/self/status).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_CHILD = """
import sys
from serve_app.config import FrameSettings
from serve_app.frames import decode_images

def kib(key):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

path, count, bounded = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "bounded"
blobs = [open(path, "rb").read()] * count
limits = FrameSettings()
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) starts again from the current resident set
except OSError:
    pass
before = kib("VmRSS")
frames = decode_images(
    blobs,
    max_images=count,
    max_pixels=limits.max_image_pixels,
    max_request_pixels=10**12,
    decode_max_pixels=limits.decode_max_pixels if bounded else None,
)
print((kib("VmHWM") - before) * 1024, sum(frame.nbytes for frame in frames))
"""


def measure(path: Path, count: int, variant: str) -> tuple[int, int]:
    """(peak growth, frame bytes) of one decode of `count` copies of `path` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), str(count), variant],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"bench_decode: the {variant} decode failed:\n{done.stderr}")
    peak, frames = done.stdout.split()
    return int(peak), int(frames)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20, help="copies of the photo in the upload (the app sends <= 20)")
    parser.add_argument("--side", type=int, default=7071, help="width and height of the PNG (7071: 50 MP)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.side < 1:
        parser.error("--count and --side must be positive")
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flat.png"
        Image.new("RGB", (args.side, args.side), (90, 160, 200)).save(path, optimize=True)
        mib = 1024 * 1024
        print(f"{args.count} x {args.side}x{args.side} PNG of {path.stat().st_size / 1024:.0f} KiB each")
        rows = {variant: measure(path, args.count, variant) for variant in ("bounded", "unbounded")}
    for variant, (peak, frames) in rows.items():
        print(f"{variant:>9}: peak growth {peak / mib:7.0f} MiB, frames {frames / mib:7.0f} MiB")
    print(f"bounded / unbounded peak: {rows['bounded'][0] / rows['unbounded'][0]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
