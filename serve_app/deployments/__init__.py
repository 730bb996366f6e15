"""The Ray Serve deployments: one per stage of `serve_app.stages.STAGES`, the TCP ingress and the HTTP one.

| deployment | module | wraps | resources |
| --- | --- | --- | --- |
| `ShareViewer` | `share_viewer.py` | `serve_app.share_pages` (HTTP: share links in a browser) | 0.05 CPU |
| `TCPIngress` | `tcp_ingress.py` | `tcp_proxy.server` + `ServeBackend` | 0.1 CPU; 1 replica by default, more share the port |
| `FrameExtractor` | `frame_extractor.py` | `DecodeStage` | 0.5 CPU |
| `VGGTInference` | `vggt_inference.py` | `InferenceStage` | 1 CPU + 1 GPU, or 1 CPU without GPU |
| `GlbExporter` | `glb_exporter.py` | `ExportStage` | 0.25 CPU |

Every deployment states its CPU share: Serve's default of one CPU per
replica would leave replicas pending on a small machine (2 cores hold the
whole app: 0.05 + 0.1 + 0.5 + 1 + 0.25).
"""

from __future__ import annotations

from ray.serve import Deployment
from ray.serve.handle import DeploymentHandle

from serve_app.stages import STAGES, DecodeStage, ExportStage, InferenceStage, Stage

from .frame_extractor import FrameExtractor
from .glb_exporter import GlbExporter
from .share_viewer import ShareViewer
from .tcp_ingress import TCPIngress
from .vggt_inference import VGGTInference

STAGE_DEPLOYMENTS: dict[type[Stage], Deployment] = {
    DecodeStage: FrameExtractor,
    InferenceStage: VGGTInference,
    ExportStage: GlbExporter,
}


def stage_handles(app_name: str) -> list[DeploymentHandle]:
    """Handles of a running application's stage deployments, in the order of STAGES."""
    from ray import serve

    return [serve.get_deployment_handle(STAGE_DEPLOYMENTS[stage].name, app_name) for stage in STAGES]


__all__ = [
    "STAGE_DEPLOYMENTS",
    "FrameExtractor",
    "GlbExporter",
    "ShareViewer",
    "TCPIngress",
    "VGGTInference",
    "stage_handles",
]
