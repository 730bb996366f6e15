"""How much one video may cost to decode: frame size, frames decoded, seconds.

A video's container can claim anything (a short duration, a small size)
and its frames can be tiny when compressed and huge when decoded, so the
work is bounded as it is done, not from what the file declares:

* the frame size (width x height) is checked against `max_pixels` from the
  stream's codec parameters before any frame is decoded, and again for each
  decoded frame (a stream may change size midway): `TooManyPixelsError`;
* every frame the decoder outputs counts against `max_decoded_frames`, and
  the decode as a whole against `max_seconds` of wall time:
  `TooManyFramesError` (send a shorter video).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tcp_proxy.errors import TooManyFramesError, TooManyPixelsError


@dataclass(frozen=True)
class VideoLimits:
    max_pixels: int = 50_000_000  # width x height of a frame (the photos' `frames.max_image_pixels`)
    max_decoded_frames: int = 18_000  # frames the decoder outputs, kept or not
    max_seconds: float = 120.0  # wall time of one video's decode


class DecodeBudget:
    """The limits of one decode, counted as it runs; raises the wire error when one is passed."""

    def __init__(self, limits: VideoLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.decoded = 0
        self._clock = clock
        self._deadline = clock() + limits.max_seconds

    def check_size(self, width: int, height: int) -> None:
        """Refuse frames of more than `max_pixels` pixels."""
        if width * height > self.limits.max_pixels:
            raise TooManyPixelsError(
                f"the video's frames are {width}x{height} = {width * height} pixels, "
                f"more than the limit of {self.limits.max_pixels}"
            )

    def count_frame(self, width: int, height: int) -> None:
        """One more decoded frame, of this size."""
        self.check_size(width, height)
        self.decoded += 1
        if self.decoded > self.limits.max_decoded_frames:
            raise TooManyFramesError(
                f"the video needs more than {self.limits.max_decoded_frames} frames decoded; send a shorter video"
            )
        self.check_time()

    def check_time(self) -> None:
        """Refuse once the decode has run longer than `max_seconds`."""
        if self._clock() > self._deadline:
            raise TooManyFramesError(
                f"decoding the video took more than {self.limits.max_seconds:g} s "
                f"({self.decoded} frames decoded); send a shorter video"
            )
