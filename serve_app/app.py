"""The Ray Serve application: `build_app`, the import path of `config/serve.yaml`.

The graph `build_app` binds (each deployment gets the settings; an arrow
points to the handles a deployment is given):

    ShareViewer        HTTP ingress on Serve's proxy: /g/<hash>, /g/<hash>.glb, /viewer/...
    └─> TCPIngress     TCP ingress (:4567); runs each reconstruction through, in order:
        ├─> FrameExtractor    DecodeStage
        ├─> VGGTInference     InferenceStage (on a GPU where the cluster has one)
        └─> GlbExporter       ExportStage

`args` (the YAML's `args` block) is read once into `AppSettings`. The stage
deployments are those of `serve_app.stages.STAGES`, in that order
(`serve_app.deployments.serve_deployments.STAGE_DEPLOYMENTS`), each bound
with the settings and options its `placement` gives (VGGTInference decides
its GPU there). Their handles go to the `TCPIngress`, which hangs off the
application's HTTP ingress, `ShareViewer` (share links in a browser).

Replica counts and CPU shares of the stage deployments can be changed in the
YAML's `deployments:` section, a fixed `num_replicas` or an
`autoscaling_config` (config/serve.cluster.yaml autoscales the three stages).
Serve lays that section over the options the builder gives, and the builder
gives a stage `ray_actor_options` and shutdown time only, never a replica
count, so an `autoscaling_config` there is never fought by one from the code
(`bind_stage` refuses a placement that sets one). Leave `ray_actor_options`
of VGGTInference to the builder, which decides the GPU, unless the entry
repeats `num_gpus`.

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
from ray.serve import Application, Deployment

from serve_app.app_args import AppArgs, settings_from_args
from serve_app.config import AppSettings
from serve_app.deployments.serve_deployments import STAGE_DEPLOYMENTS, ShareViewer, TCPIngress

SHUTDOWN_MARGIN_S = 10.0  # for closing the database and the listener after the drain
REPLICA_COUNT_OPTIONS = frozenset({"num_replicas", "autoscaling_config"})  # the YAML's to give, never the builder's


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
    refuse_unknown_preset(settings)
    stages = [bind_stage(deployment, settings) for deployment in STAGE_DEPLOYMENTS.values()]
    tcp_ingress = TCPIngress.options(**ingress_shutdown(settings)).bind(settings, *stages)
    return ShareViewer.bind(settings, tcp_ingress)


def refuse_unknown_preset(settings: AppSettings) -> None:
    """Refuse a `model.preset` the model does not know now, not in a replica that would restart in a loop."""
    from serve_app.vggt.config import PRESETS  # here, not in the settings: it imports torch

    if settings.model.preset not in PRESETS:
        raise ValueError(f"setting model.preset must be one of {list(PRESETS)}, got {settings.model.preset!r}")


def bind_stage(deployment: Deployment, settings: AppSettings) -> Application:
    """A stage deployment bound with its `placement`, allowed to finish a reconstruction on shutdown."""
    bound_settings, options = deployment.func_or_class.placement(settings)
    given = set(options) | deployment._deployment_config.user_configured_option_names
    counts = REPLICA_COUNT_OPTIONS & given
    if counts:  # the YAML's deployments: section decides the count, fixed or autoscaled
        raise ValueError(f"{deployment.name}: the builder must not set {sorted(counts)}")
    # On a redeploy or scale-down, a replica may finish the reconstruction it is running.
    shutdown = {"graceful_shutdown_timeout_s": settings.proxy.drain_timeout_s}
    return deployment.options(**shutdown, **options).bind(bound_settings)


def ingress_shutdown(settings: AppSettings) -> dict[str, float]:
    """The TCP ingress's shutdown time: the port handover plus every request under way (ProxyServer.drain)."""
    proxy = settings.proxy
    return {"graceful_shutdown_timeout_s": proxy.handover_s + proxy.drain_timeout_s + SHUTDOWN_MARGIN_S}
