"""Scenario 5 of `scripts/abuse_check.py`: a video whose container understates its length.

A 300-frame 1080p MP4 (one numbered frame a second, a few hundred KiB),
its `mvhd`/`tkhd`/`mdhd` durations rewritten to claim one second
(`devkit.media.understate_duration`), is sent as VIDEO by a VIP user from
127.0.13.1. The RSS of the FrameExtractor replica(s) is sampled from before
the upload until the reply. Kept whole, its frames would take 1.7 GiB; the
decoder keeps at most `frames.max_frames` + 3. Goals: RSS growth under
900 MiB, and a reply in VIDEO's shape (a GLB or an ERROR_* code).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from devkit import media
from devkit.abuse_scenarios import MiB, Finding
from devkit.loopback_wire import LOGIN_OK, Target, close, connect, header, login_frame, read_block
from devkit.memory import PeakSampler
from devkit.processes import replica_processes, rss_bytes
from tcp_proxy.codec import VIDEO

VIDEO_NET = "127.0.13"
VIDEO_GOAL = 900 * MiB
FRAMES, WIDTH, HEIGHT = 300, 1920, 1080
SAMPLE_S = 0.1
RECONSTRUCTION_TIMEOUT_S = 600.0


def extractor_rss(root: int | None = None) -> int | None:
    """RSS of the FrameExtractor replica process(es) (below `root` when given); None if there is none."""
    pids = [pid for pid, cmd in replica_processes(root).items() if "FrameExtractor" in cmd]
    return sum(rss_bytes(pid) for pid in pids) if pids else None


def understated_video(frames: int = FRAMES, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """An MP4 of `frames` numbered frames, one a second, whose container claims one second."""
    with tempfile.TemporaryDirectory() as folder:
        images = (media.numbered_frame(i, width, height) for i in range(frames))
        path = media.write_video(Path(folder) / "long.mp4", images, fps=1)
        return media.understate_duration(path.read_bytes(), 1.0)


async def send_video(target: Target, source: str, username: str, password: str, video: bytes) -> str:
    """LOGIN then VIDEO on one connection; what came back: "GLB <name>", the ERROR_* code, or why nothing."""
    reader, writer = await connect(target, source)
    try:
        writer.write(login_frame(username, password))
        if await read_block(reader) not in LOGIN_OK:
            return "LOGIN refused"
        writer.write(header(VIDEO, len(video)) + video)
        name = await asyncio.wait_for(read_block(reader), RECONSTRUCTION_TIMEOUT_S)
        body = await read_block(reader)
        return f"GLB {name.decode('ascii', 'replace')}" if name else body.decode("ascii", "replace")
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
        return f"no reply ({type(exc).__name__})"
    finally:
        await close(writer)


async def check_video_bomb(target: Target, username: str, password: str, root: int | None = None) -> Finding:
    """Scenario 5: the understated video; FrameExtractor RSS growth and the reply."""
    video = await asyncio.to_thread(understated_video)
    with PeakSampler(lambda: extractor_rss(root), SAMPLE_S) as sampler:
        answer = await send_video(target, f"{VIDEO_NET}.1", username, password, video)
    growth = sampler.growth
    shaped = answer.startswith(("GLB ", "ERROR_"))
    shown = "FrameExtractor RSS not found (Linux /proc)" if growth is None else (
        f"FrameExtractor RSS +{growth / MiB:.0f} MiB ({sampler.before / MiB:.0f} -> peak {sampler.peak / MiB:.0f} MiB)"
    )
    detail = f"{shown}; {FRAMES} frames {WIDTH}x{HEIGHT} claiming 1 s ({len(video) // 1024} KiB): {answer}"
    goal = f"RSS growth < {VIDEO_GOAL // MiB} MiB; a VIDEO reply"
    met = growth is not None and growth < VIDEO_GOAL and shaped
    return Finding("5 understated video", detail, goal, met, {"rss_growth": growth, "answer": answer})
