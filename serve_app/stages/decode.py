"""Decode: photo files or a video file to RGB frames (`serve_app.frames`)."""

from __future__ import annotations

from serve_app.config import AppSettings
from serve_app.frames import decode_images, sample_video
from serve_app.frames.bounds import DecodeTarget
from serve_app.frames.video_limits import VideoLimits

from .messages import Frames, Upload
from .stage import Progress, Stage


class DecodeStage(Stage[Upload, Frames]):
    name = "decode"

    def __init__(self, settings: AppSettings) -> None:
        self.settings = settings.frames
        # photos and video frames are reduced to what the model's preprocessing needs (serve_app.frames.bounds)
        self.target = DecodeTarget(
            mode=settings.model.preprocess_mode,
            oversample=self.settings.decode_oversample,
            max_pixels=self.settings.decode_max_pixels,
        )

    def run(self, upload: Upload, progress: Progress | None = None) -> Frames:
        """progress: called with (frames decoded, frames expected) as frames come."""
        limits = self.settings
        if upload.video is not None:
            frames = sample_video(
                upload.video,
                fps=limits.fps,
                max_frames=limits.max_frames,
                sharpest=limits.sharpest,
                max_side=limits.max_side or None,
                decode_max_pixels=limits.decode_max_pixels,
                target=self.target,
                limits=VideoLimits(
                    max_pixels=limits.max_image_pixels,
                    max_decoded_frames=limits.max_decoded_frames,
                    max_seconds=limits.max_decode_s,
                ),
                progress=progress,
            )
        else:
            frames = decode_images(
                upload.images,
                max_images=limits.max_images,
                max_pixels=limits.max_image_pixels,
                max_request_pixels=limits.max_request_pixels,
                target=self.target,
                workers=limits.decode_workers,
                progress=progress,
            )
        return Frames(upload.job, list(frames), upload.source)
