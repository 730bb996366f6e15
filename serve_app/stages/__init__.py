"""The stages of one reconstruction, declared once, in order.

Both the in-process `serve_app.pipeline.Pipeline` (CLI, tests, benchmarks)
and the Ray Serve graph (`serve_app.app.build_app`: one deployment per
stage, chained through handles by
`serve_app.deployments.stage_runner.HandleStageRunner`)
run exactly this tuple. Each stage takes the previous one's output
(`serve_app.stages.messages`).
"""

from .decode import DecodeStage
from .export import ExportStage
from .inference import InferenceStage
from .messages import Frames, Job, Predictions, Reconstruction, Upload
from .stage import Progress, Stage, run_stage

STAGES: tuple[type[Stage], ...] = (DecodeStage, InferenceStage, ExportStage)

__all__ = [
    "STAGES",
    "DecodeStage",
    "ExportStage",
    "Frames",
    "InferenceStage",
    "Job",
    "Predictions",
    "Progress",
    "Reconstruction",
    "Stage",
    "Upload",
    "run_stage",
]
