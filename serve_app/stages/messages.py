"""What travels from one stage to the next (in-process, or through Ray's object store).

    Upload --decode--> Frames --inference--> Predictions --export--> Reconstruction

Every message carries the `Job` it belongs to and the seconds spent so far
per stage (`timings`, filled in by `run_stage`). The last one,
`Reconstruction`, is the protocol package's result type: the TCP server
replies with it as is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from tcp_proxy.backend import Reconstruction

__all__ = ["Frames", "Job", "Predictions", "Reconstruction", "Upload"]


@dataclass(frozen=True)
class Job:
    """Whose reconstruction this is; passed on unchanged by every stage."""

    user_id: int | None = None  # owner of the stored GLB; None: the GLB is returned, not stored
    original_name: str = ""  # recorded with the stored GLB
    source_digest: str | None = None  # result cache key, stored with the GLB (serve_app.result_cache)


@dataclass(frozen=True)
class Upload:
    """The decode stage's input: photo files, or a video file's bytes.

    `video` is the file's bytes as a uint8 array, never a path: a path means
    nothing on another node. `from_video_file` maps the file without reading
    it into memory; Ray ships the array through its object store to the
    decode replica (zero-copy on each side), wherever that runs.
    """

    job: Job
    images: tuple[bytes | np.ndarray, ...] = ()  # each photo file's bytes ([N] uint8 arrays from the service)
    video: np.ndarray | None = None  # [N] uint8, the whole file
    timings: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_video_file(cls, job: Job, path: str | os.PathLike[str]) -> "Upload":
        """An upload of the video file at `path`, memory-mapped (the file must stay until it is sent)."""
        if os.path.getsize(path) == 0:
            return cls(job, video=np.zeros(0, np.uint8))  # nothing to map
        return cls(job, video=np.asarray(np.memmap(path, dtype=np.uint8, mode="r")))

    @property
    def source(self) -> str:
        return "video" if self.video is not None else "images"


@dataclass(frozen=True)
class Frames:
    """Decoded frames, each [H, W, 3] uint8 RGB, upright."""

    job: Job
    frames: list[np.ndarray]
    source: str  # "images" or "video"
    timings: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Predictions:
    """VGGT's outputs as numpy float32 arrays, batch dim removed (the keys the export reads).

    pose_enc [S,9], depth [S,H,W,1], depth_conf [S,H,W], world_points [S,H,W,3],
    world_points_conf [S,H,W], extrinsic [S,3,4], intrinsic [S,3,3],
    world_points_from_depth [S,H,W,3], images [S,3,H,W] (the model input in [0, 1]).
    """

    job: Job
    arrays: dict[str, np.ndarray]
    frame_count: int
    timings: Mapping[str, float] = field(default_factory=dict)
