"""The Ray Serve application: `build_app`, the import path of `config/serve.yaml`.

`args` (the YAML's `args` block) is read once into `AppSettings`. The
builder binds one deployment per stage of `serve_app.stages.STAGES`, in that
order (`serve_app.deployments.STAGE_DEPLOYMENTS`), each with the settings
and options its `placement` gives (VGGTInference decides its GPU there), and
hands their handles to the `TCPIngress`, which chains them per request. The
application's HTTP ingress is `ShareViewer` (share links in a browser, on
Serve's HTTP proxy); the TCP ingress hangs off it.

Replica counts and CPU shares of the stage deployments can be changed in the
YAML's `deployments:` section; leave `ray_actor_options` of VGGTInference to
the builder, which decides the GPU.

Paths: the database URL, storage root, checkpoint and spool dir are used as
given; relative ones resolve against the replicas' working directory, which
under `serve run` is the directory `serve run` was started from. For `serve
deploy` onto a long-running cluster, give absolute paths. No path crosses a
deployment: uploads (video files included) travel as bytes through Ray's
object store, and the spool dir is local to each ingress replica. A
multi-node cluster needs the storage root on storage every node with a
TCPIngress or GlbExporter replica sees, a server database (PostgreSQL) or
the SQLite file on such storage, and the checkpoint (and sky model) at the
same path on every node that runs VGGTInference (GlbExporter).
"""

# No `from __future__ import annotations` here: Serve reads build_app's annotation (AppArgs) at run time.
from ray.serve import Application

from serve_app.app_args import AppArgs, settings_from_args
from serve_app.deployments import STAGE_DEPLOYMENTS, ShareViewer, TCPIngress
from serve_app.stages import STAGES

SHUTDOWN_MARGIN_S = 10.0  # for closing the database and the listener after the drain


def build_app(args: AppArgs) -> Application:
    """The application for `args` (the YAML's `args`; see `serve_app.config.AppSettings`).

    Serve validates the YAML's `args` against `AppArgs` first (its typed
    builder); called from Python, a plain mapping is validated here. For `serve
    run serve_app.app:build_app key=value ...` dotted keys are accepted too
    (`model.preset=tiny proxy.port=4568`), their values parsed as YAML scalars.
    Values out of range, and an unknown `model.preset`, are refused here, before
    any replica starts.
    """
    settings = settings_from_args(args)
    from serve_app.vggt.config import PRESETS  # here, not in the settings: it imports torch

    if settings.model.preset not in PRESETS:  # refused now, not in a replica that would restart in a loop
        raise ValueError(f"setting model.preset must be one of {list(PRESETS)}, got {settings.model.preset!r}")
    proxy = settings.proxy
    # On a redeploy or scale-down, a replica may finish what it is doing: a reconstruction in a stage,
    # and for the ingress the port handover plus every request under way (ProxyServer.drain).
    stage_shutdown = {"graceful_shutdown_timeout_s": proxy.drain_timeout_s}
    ingress_shutdown = {"graceful_shutdown_timeout_s": proxy.handover_s + proxy.drain_timeout_s + SHUTDOWN_MARGIN_S}
    stages = []
    for stage in STAGES:
        deployment = STAGE_DEPLOYMENTS[stage]
        bound_settings, options = deployment.func_or_class.placement(settings)
        stages.append(deployment.options(**stage_shutdown, **options).bind(bound_settings))
    return ShareViewer.bind(settings, TCPIngress.options(**ingress_shutdown).bind(settings, *stages))
