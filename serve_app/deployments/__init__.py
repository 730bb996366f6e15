"""The Ray Serve deployments: one per stage of `serve_app.stages.STAGES`, the TCP ingress and the HTTP one.

| deployment | module | wraps | resources |
| --- | --- | --- | --- |
| `ShareViewer` | `share_viewer.py` | `serve_app.http.share_pages` (share links in a browser) | 0.05 CPU |
| `TCPIngress` | `tcp_ingress.py` | `tcp_proxy.server` + `ServeBackend` | 0.1 CPU; 1 replica by default, more share the port |
| `FrameExtractor` | `frame_extractor.py` | `DecodeStage` | 0.5 CPU |
| `VGGTInference` | `vggt_inference.py` | `InferenceStage` | 1 CPU + 1 GPU, or 1 CPU without GPU |
| `GlbExporter` | `glb_exporter.py` | `ExportStage` | 0.25 CPU |

Every deployment states its CPU share: Serve's default of one CPU per
replica would leave replicas pending on a small machine (2 cores hold the
whole app: 0.05 + 0.1 + 0.5 + 1 + 0.25).

This package imports without Ray: the stage deployment classes are plain
`StageDeployment` subclasses, and `STAGE_DEPLOYMENT_CLASSES` maps each stage
to its class, read from the classes' own `stage_class` (importing fails
unless every stage has exactly one). The Ray side is in its own modules:
`serve_deployments.py` (the `serve.deployment` objects the builder binds),
`stage_runner.py` (a request's run through the stage handles),
`tcp_ingress.py` and `share_viewer.py`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from serve_app.stages import STAGES, Stage

from .frame_extractor import FrameExtractor
from .glb_exporter import GlbExporter
from .stage_deployment import StageDeployment, classes_by_stage
from .vggt_inference import VGGTInference

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

STAGE_DEPLOYMENT_CLASSES: dict[type[Stage], type[StageDeployment]] = classes_by_stage(
    (FrameExtractor, VGGTInference, GlbExporter), STAGES
)


def stage_handles(app_name: str) -> list[DeploymentHandle]:
    """Handles of a running application's stage deployments, in the order of STAGES."""
    from ray import serve

    return [serve.get_deployment_handle(cls.__name__, app_name) for cls in STAGE_DEPLOYMENT_CLASSES.values()]


__all__ = [
    "STAGE_DEPLOYMENT_CLASSES",
    "FrameExtractor",
    "GlbExporter",
    "StageDeployment",
    "VGGTInference",
    "stage_handles",
]
