"""A VIDEO whose container understates its length, over the wire to the running service.

150 frames of 1280x720 (2.6 MiB each as RGB), one a second, in an MP4 whose
durations claim one second: the FrameExtractor keeps at most
`frames.max_frames` (4) + 3 of them while decoding, and the client gets a
GLB as for any video.
"""

from __future__ import annotations

import os
import re

import pytest
from service_users import PASSWORD
from wire_client import Conn

from devkit import media
from devkit.memory import PeakSampler
from devkit.processes import replica_processes, rss_bytes

pytestmark = pytest.mark.timeout(900)

MiB = 1024 * 1024
FRAMES, WIDTH, HEIGHT = 150, 1280, 720  # 385 MiB of RGB frames if all were kept
GROWTH_LIMIT = 150 * MiB


def extractor_rss(app_name: str) -> int | None:
    """RSS of the app's FrameExtractor replica(s), started by this test process's Ray cluster."""
    marker = f"ServeReplica:{app_name}:FrameExtractor"
    pids = [pid for pid, cmd in replica_processes(os.getpid()).items() if marker in cmd]
    return sum(rss_bytes(pid) for pid in pids) if pids else None


def test_an_understated_video_is_answered_without_the_decoder_holding_its_frames(service, tmp_path):
    frames = (media.numbered_frame(i, WIDTH, HEIGHT) for i in range(FRAMES))
    honest = media.write_video(tmp_path / "long.mp4", frames, fps=1)
    video = media.understate_duration(honest.read_bytes(), 1.0)
    assert extractor_rss(service.name) is not None
    with Conn(service.port) as c, PeakSampler(lambda: extractor_rss(service.name), every_s=0.05) as memory:
        assert c.login("vip", PASSWORD)[:2] == [True, True]
        reply = c.video(video)
    assert reply.error is None, reply.data[:100]
    assert re.match(r"^[0-9a-f]{64}\.glb$", reply.name) and reply.data[:4] == b"glTF"
    assert memory.growth is not None and memory.growth < GROWTH_LIMIT, f"FrameExtractor grew {memory.growth / MiB:.0f} MiB"
