"""Phone video to upright RGB frames, sampled by presentation time (PyAV).

What is sampled is described in `sampling.py`. How it is read:

* packets are demuxed in order; a packet is held back (not decoded) while
  the frame it carries is before the next wanted time, and the held packets
  are dropped whenever a keyframe at or before that time arrives, so whole
  groups of pictures between samples are never decoded;
* when a packet at or after the wanted time arrives, the held packets (which
  start at a keyframe, or continue the decoder's state) are decoded first;
* non-reference frames of packets before the wanted time are skipped by the
  decoder itself (`skip_frame = NONREF`): nothing refers to them and they
  are not wanted;
* only kept frames are converted to RGB; the decoder runs multithreaded;
* a threaded decoder returns a frame only after it has been given a few
  more packets (one per extra thread: up to 16 frames decoded for nothing per
  sample). When frames come out in packet order (no B-frames, as phones
  record) and the next sample lies past the next keyframe, the decoder is
  drained at the sample's packet instead and reset (plain mode only);
  should the next sample fall in the same group of pictures after all, that
  group is decoded again from its keyframe (its packets are kept; a group of
  more than `GOP_PACKETS_KEPT` packets turns draining off for the video);
* reading stops as soon as the last capped sample time is served;
* at most `max_frames` + `THINNING_SLACK` + 1 converted frames are held at
  any time, whatever length the container declares (`sampling.py`: the
  sample grid thins);
* the frame size, the frames decoded and the decode's wall time are bounded
  (`video_limits.py`), the size before any frame is decoded.

Frames come out upright: the display matrix (rotation, mirror) is applied.
Each kept frame is reduced to what the model's preprocessing needs
(`bounds.DecodeTarget.decode_size`: twice the model input, aspect kept; a 4K
frame is kept at 1046x588 for a 518-px model in crop mode), to at most
`decode_max_pixels` pixels, and its long side to `max_side` when that is
set. The reduction is an area filter over the frame converted to RGB at full
size: scaling within swscale's YUV-to-RGB conversion filters the chroma
differently and costs the model input ~10 dB PSNR against a full-size
frame; this way it stays above 40 dB (scripts/bench_frames.py), at the
cost of one full-size RGB frame alive at a time. H.264 and HEVC have no
reduced-size decoding in FFmpeg, so frames are decoded whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from fractions import Fraction

import av
import cv2
import numpy as np

from serve_app.frames.bounds import (
    DECODE_MAX_PIXELS,
    DecodeTarget,
    fit_pixels,
    fit_side,
)
from serve_app.frames.buffer_file import BufferFile
from serve_app.frames.orientation import apply_display_matrix, display_matrix
from serve_app.frames.sampling import (
    EPS,
    FrameSelector,
    even_spacing,
    sample_count,
    sample_times,
)
from serve_app.frames.sharpness import frame_sharpness
from serve_app.frames.video_limits import DecodeBudget, VideoLimits
from tcp_proxy.errors import NoFramesError

# demuxers that read a single still image, not a video
_STILL_IMAGE_FORMATS = ("image2",)
# (frames kept so far, frames expected: None while the video's length is unknown)
# samples held beyond max_frames before the sample grid thins: a video whose declared length is a
# frame or two short still gets the evenly spaced pick of all its samples
THINNING_SLACK = 2
# packets of one group of pictures kept so that a drained decoder can restart at its keyframe;
# a longer group turns draining off for the video (10 s at 60 fps)
GOP_PACKETS_KEPT = 600
MODEL_TARGET = DecodeTarget()  # 518-px model, crop mode (serve_app.frames.bounds)
Progress = Callable[[int, "int | None"], None]


def sample_video(
    source: str | os.PathLike | np.ndarray,
    fps: float = 0.4,
    max_frames: int = 64,
    sharpest: bool = False,
    *,
    max_side: int | None = None,
    decode_max_pixels: int | None = DECODE_MAX_PIXELS,
    target: DecodeTarget | None = MODEL_TARGET,
    limits: VideoLimits = VideoLimits(),
    progress: Progress | None = None,
) -> list[np.ndarray]:
    """Sample a video (a file's path, or its bytes as a uint8 array) into RGB uint8 frames ([H, W, 3], upright).

    One frame per `1/fps` seconds of video time (see `sampling.py`), at most
    `max_frames` (evenly spaced), at least one. `sharpest` picks the sharpest
    frame of each window instead of the first. Each frame is reduced to
    `target.decode_size` (None: the model sets no size), to at most
    `decode_max_pixels` pixels and `max_side` on its longer side (None
    or 0: no bound). `progress`, when given, is called with (frames kept,
    frames expected) as each frame is kept, and a last time with the frames
    returned. Raises NoFramesError for an empty file,
    a file that is not a video, or a video with no decodable frame;
    TooManyPixelsError and TooManyFramesError past `limits`; a path
    that does not exist raises FileNotFoundError (a caller's bug).
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps!r}")
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames!r}")
    if max_side is not None and max_side < 0:
        raise ValueError(f"max_side must be 0 (off) or positive, got {max_side!r}")
    if decode_max_pixels is not None and decode_max_pixels < 0:
        raise ValueError(f"decode_max_pixels must be 0 (off) or positive, got {decode_max_pixels!r}")
    if isinstance(source, np.ndarray):
        opened: str | BufferFile = BufferFile(source)
        size = len(opened)
    else:
        opened = os.fspath(source)
        size = os.path.getsize(opened)
    if size == 0:
        raise NoFramesError("the video file is empty")
    budget = DecodeBudget(limits)
    container = _open(opened)
    with container:
        stream = _video_stream(container)
        budget.check_size(stream.codec_context.width, stream.codec_context.height)  # before any decoding
        sizes = _KeptSize(target, decode_max_pixels, max_side)
        reader = _SampledReader(container, stream, fps, max_frames, sharpest, sizes, budget, progress)
        frames = reader.run()
    if not frames:
        raise NoFramesError("the video has no decodable frame")
    frames = even_spacing(frames, max_frames)
    if progress is not None:
        progress(len(frames), len(frames))
    return frames


def _open(source: str | BufferFile):
    try:
        container = av.open(source, metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise NoFramesError(f"not a decodable video ({_reason(exc)})") from exc
    name = container.format.name
    if name in _STILL_IMAGE_FORMATS or name.endswith("_pipe"):
        container.close()
        raise NoFramesError(f"not a video file (a still image, {name})")
    return container


def _video_stream(container):
    for stream in container.streams.video:
        if not _is_cover_art(stream):
            return stream
    raise NoFramesError("the file has no video stream")


def _is_cover_art(stream) -> bool:
    disposition = getattr(stream, "disposition", None)
    try:
        return bool(disposition & av.stream.Disposition.attached_pic)
    except (AttributeError, TypeError):
        return False


def _reason(exc: BaseException) -> str:
    """What FFmpeg said, without its error number and the file name it does not know
    (`[Errno 1094995529] Invalid data found when processing input: '<none>'`)."""
    if isinstance(exc, av.FFmpegError) and getattr(exc, "strerror", None):
        return str(exc.strerror)
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _SampledReader:
    """One pass over a video stream that feeds a FrameSelector."""

    def __init__(self, container, stream, fps, max_frames, sharpest, sizes, budget, progress=None):
        self._container = container
        self._stream = stream
        self._fps = fps
        self._max_frames = max_frames
        self._sharpest = sharpest
        self._sizes: _KeptSize = sizes
        self._codec = stream.codec_context
        self._codec.thread_type = "AUTO"
        self._skip = "DEFAULT"
        self._selector: FrameSelector | None = None
        self._matrix: tuple[int, ...] | None = None
        self._last_time: float | None = None
        self._frame_step = _frame_step(stream)
        self._progress = progress
        self._expected: int | None = None
        self._converted = 0
        self._budget: DecodeBudget = budget
        # packets since the last keyframe, for a decoder drained mid-GOP (None: draining is off)
        self._gop: list | None = None if sharpest else []
        self._last_key: float | None = None
        self._gop_seconds: float | None = None  # keyframe to keyframe, the last two seen
        self._flushed = False  # drained and reset: decoding restarts at a keyframe
        _ignore_other_streams(container, stream)

    def run(self) -> list[np.ndarray]:
        held: list = []
        holding = True  # packets wait in `held` until one is wanted
        try:
            for packet in self._container.demux(self._stream):
                self._budget.check_time()
                if packet.size == 0:
                    continue  # PyAV's end-of-stream markers; flushed below
                t = _seconds(packet.pts, packet.time_base)
                self._track_gop(packet, t)
                selector = self._selector or self._start(t)
                wanted = selector.wanted_from
                if wanted is None:
                    break
                if not holding:
                    holding = self._decode([packet])
                    if holding:
                        held = []
                    continue
                if packet.is_keyframe and t is not None and t <= wanted + EPS:
                    held = [packet]  # decoding may restart here
                else:
                    held.append(packet)
                if _not_before(packet, wanted):
                    holding = self._decode(held)
                    held = []
        except av.FFmpegError:
            pass  # a damaged tail: keep what was read before it
        if self._selector is None:
            return []
        wanted = self._selector.wanted_from
        if wanted is not None:
            if any(_not_before(packet, wanted) for packet in held):
                self._decode(held)
            self._decode([None])  # drain the decoder
            self._selector.finish()
        return self._selector.kept

    def _start(self, first_packet_time: float | None) -> FrameSelector:
        t0 = _seconds(self._stream.start_time, self._stream.time_base)
        if t0 is None:
            t0 = first_packet_time or 0.0
        window = 1.0 / self._fps if self._sharpest else 0.0
        self._selector = FrameSelector(
            self._times(t0),
            window,
            keep=self._to_rgb,
            score=frame_sharpness if self._sharpest else None,
            limit=self._max_frames + THINNING_SLACK,
        )
        return self._selector

    def _times(self, t0: float) -> Iterable[float]:
        duration = _duration(self._container, self._stream)
        span = None if duration is None else max(0.0, duration - self._frame_step)
        if span is not None:
            self._expected = min(sample_count(span, self._fps), self._max_frames)
        return sample_times(t0, self._fps, span, self._max_frames)

    def _decode(self, packets: list) -> bool:
        """Decode packets in order; True when no frame is wanted right now."""
        selector = self._selector
        assert selector is not None
        taken_before = selector.taken
        first = packets[0] if packets else None
        if self._flushed and first is not None and not first.is_keyframe and self._gop and self._gop[-1] is packets[-1]:
            packets = list(self._gop)  # the decoder lost its references: replay from the keyframe
        for packet in packets:
            if packet is not None:
                self._flushed = self._flushed and not packet.is_keyframe
                self._set_skip(packet, selector.wanted_from)
            try:
                frames = self._codec.decode(packet)
            except av.FFmpegError:
                continue  # a damaged packet; the decoder resynchronises
            for frame in frames:
                self._budget.count_frame(frame.width, frame.height)
                selector.offer(self._frame_time(frame), frame)
        if selector.taken == taken_before and packets and self._may_drain(packets[-1]):
            self._drain()
        return selector.taken > taken_before and not selector.window_open

    def _track_gop(self, packet, t: float | None) -> None:
        if packet.is_keyframe and t is not None:
            if self._last_key is not None and t > self._last_key:
                self._gop_seconds = t - self._last_key
            self._last_key = t
        if self._gop is None:
            return
        if packet.is_keyframe:
            self._gop = [packet]
        else:
            self._gop.append(packet)
            if len(self._gop) > GOP_PACKETS_KEPT and not self._flushed:
                self._gop = None  # a long GOP: no draining for this video

    def _may_drain(self, last) -> bool:
        """Whether to drain the decoder now for the wanted frame rather than feed it more packets
        (a threaded decoder returns a frame only some packets after its own): when frames come out
        in packet order, so `last` holds the wanted frame, and the next sample is due after the
        next keyframe, where decoding restarts anyway (expected as far on as the last group of
        pictures was long; within a group already longer, no guess). A wrong guess costs a replay
        of the group up to the next sample."""
        wanted = self._selector.wanted_from if self._selector else None
        t = None if last is None else _seconds(last.pts, last.time_base)
        if self._gop is None or wanted is None or t is None or t < wanted - EPS or self._codec.has_b_frames:
            return False
        if self._last_key is None or self._gop_seconds is None:
            return False
        next_key = self._last_key + self._gop_seconds  # if this group is as long as the last
        return t < next_key - EPS and max(wanted + 1.0 / self._fps, t) >= next_key - EPS

    def _drain(self) -> None:
        """Take every frame the decoder holds, then reset it (it then needs a keyframe)."""
        selector = self._selector
        assert selector is not None
        try:
            frames = self._codec.decode(None)
        except av.FFmpegError:
            frames = []
        for frame in frames:
            self._budget.count_frame(frame.width, frame.height)
            selector.offer(self._frame_time(frame), frame)
        self._codec.flush_buffers()
        self._flushed = True

    def _set_skip(self, packet, wanted: float | None) -> None:
        t = _seconds(packet.pts, packet.time_base)
        skip = "NONREF" if wanted is not None and t is not None and t < wanted - EPS else "DEFAULT"
        if skip != self._skip:
            self._codec.skip_frame = skip
            self._skip = skip

    def _frame_time(self, frame) -> float:
        t = _seconds(frame.pts, frame.time_base or self._stream.time_base)
        if t is None:  # no timestamp: assume a constant rate after the last one
            t = 0.0 if self._last_time is None else self._last_time + self._frame_step
        self._last_time = t
        return t

    def _to_rgb(self, frame) -> np.ndarray:
        matrix = display_matrix(frame)
        if matrix is not None:
            self._matrix = matrix
        rgb = frame.to_ndarray(format="rgb24")
        width, height = self._sizes.stored(frame.width, frame.height, self._matrix)
        if (width, height) != (frame.width, frame.height):
            rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(apply_display_matrix(rgb, self._matrix))
        self._converted += 1
        if self._progress is not None:
            expected = None if self._expected is None else max(self._expected, self._converted)
            self._progress(self._converted, expected)
        return rgb


class _KeptSize:
    """The size a decoded frame is kept at: the model's `decode_size` of the upright frame, then
    `max_pixels` and `max_side`; never larger than the frame."""

    def __init__(self, target: DecodeTarget | None, max_pixels: int | None, max_side: int | None) -> None:
        self._target = target
        self._max_pixels = max_pixels
        self._max_side = max_side

    def upright(self, width: int, height: int) -> tuple[int, int]:
        """The kept size of an upright frame of `width` x `height`."""
        size = (width, height) if self._target is None else self._target.decode_size(width, height)
        size = fit_side(*fit_pixels(*size, self._max_pixels), self._max_side)
        return min(size[0], width), min(size[1], height)

    def stored(self, width: int, height: int, matrix: tuple[int, ...] | None) -> tuple[int, int]:
        """The kept size of a frame stored at `width` x `height`, shown with display `matrix`."""
        if not _turns_sideways(matrix):
            return self.upright(width, height)
        kept_height, kept_width = self.upright(height, width)
        return kept_width, kept_height


def _turns_sideways(matrix: tuple[int, ...] | None) -> bool:
    """Whether the display matrix turns the frame by a quarter (width and height swap)."""
    return matrix is not None and matrix[0] == 0 and matrix[4] == 0 and matrix[1] != 0 and matrix[3] != 0


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    if value is None or time_base is None:
        return None
    return float(value * time_base)


def _not_before(packet, wanted: float) -> bool:
    t = _seconds(packet.pts, packet.time_base)
    return t is None or t >= wanted - EPS


def _duration(container, stream) -> float | None:
    seconds = _seconds(stream.duration, stream.time_base)
    if seconds is None and container.duration is not None:
        seconds = container.duration / av.time_base
    return seconds if seconds and seconds > 0 else None


def _frame_step(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return 1.0 / float(rate) if rate else 1.0 / 30.0


def _ignore_other_streams(container, keep) -> None:
    """Let the demuxer skip audio and metadata packets."""
    discard_all = getattr(getattr(av.stream, "Discard", None), "all", None)
    if discard_all is None:
        return
    for stream in container.streams:
        if stream.index != keep.index:
            try:
                stream.discard = discard_all
            except (AttributeError, TypeError, ValueError):
                return
