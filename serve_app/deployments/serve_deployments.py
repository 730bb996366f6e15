"""The application's Serve `Deployment` objects: what `serve_app.app.build_app` binds.

Each stage deployment class is wrapped here by `serve.deployment` with its
own `serve_options`, under its class's name; the two ingresses carry their
decorators in their modules (`TCPIngress`, and `ShareViewer`, whose FastAPI
routes need `serve.ingress` on the class).
"""

from __future__ import annotations

from ray import serve
from ray.serve import Deployment

from serve_app.stages import Stage

from . import STAGE_DEPLOYMENT_CLASSES
from .share_viewer import ShareViewer
from .stage_deployment import StageDeployment
from .tcp_ingress import TCPIngress


def stage_deployment(cls: type[StageDeployment]) -> Deployment:
    """`cls` as a Serve deployment named after it."""
    return serve.deployment(name=cls.__name__, **cls.serve_options)(cls)


STAGE_DEPLOYMENTS: dict[type[Stage], Deployment] = {
    stage: stage_deployment(cls) for stage, cls in STAGE_DEPLOYMENT_CLASSES.items()
}

__all__ = ["STAGE_DEPLOYMENTS", "ShareViewer", "TCPIngress", "stage_deployment"]
