"""`FrameExtractor`: the decode stage (OpenCV/PyAV) as a deployment."""

from __future__ import annotations

from serve_app.stages import DecodeStage

from .stage_deployment import StageDeployment


class FrameExtractor(StageDeployment):
    """Photos and phone videos to RGB uint8 frames."""

    stage_class = DecodeStage
    serve_options = {"ray_actor_options": {"num_cpus": 0.5}, "max_ongoing_requests": 4}
