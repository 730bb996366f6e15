"""Every setting of the service, typed, in one place.

`AppSettings.from_dict(args)` turns the `args` block of `config/serve.yaml`
(or a CLI's options) into frozen dataclasses once, at start; nothing changes
them afterwards. These dataclasses are the one declaration of every setting:
each field's annotation names its type, range (`annotated_types`) or choices
(`Literal`), and `__post_init__` enforces them (`tcp_proxy.field_checks`);
`serve_app.app_args` makes the strict pydantic model Serve validates the YAML
with from the same annotations. Unknown keys are an error, so a typo in the
YAML fails loudly; every problem is one `SettingError` line naming the setting.
Two sections are defined beside the code they configure: `proxy` is the TCP
server's `tcp_proxy.settings.ProxySettings`, `export` is
`serve_app.export.options.ExportOptions`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Le

from serve_app.database_url_source import DEFAULT_DATABASE_URL, resolve_database_url
from serve_app.export.options import ExportOptions
from tcp_proxy.field_checks import (
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SettingError,
    check_fields,
)
from tcp_proxy.proxy_protocol import parse_trusted
from tcp_proxy.settings import ProxySettings

Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class StorageSettings:
    # existing deployments keep this file; not in repr: it may hold a password
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)
    # or the name of an environment variable holding the URL, or a file holding it (a mounted secret):
    # the Serve config (shown by the dashboard) then holds no password. One source only; read once,
    # here, after which database_url holds the URL and these two are "" (serve_app.database_url_source)
    database_url_env: str = ""
    database_url_file: str = ""
    storage_root: str = "."  # GLBs go to <storage_root>/out/YYYY-MM-DD/<hash>.glb; or s3://bucket/prefix
    # an S3-compatible service other than AWS (MinIO, Ceph): its URL; "" = AWS's own endpoint.
    # Credentials never go here: the standard AWS variables and files supply them.
    s3_endpoint_url: str = ""
    reuse_results: bool = True  # the same upload by the same user answers the stored GLB (serve_app.result_cache)
    # Lifecycle of stored results (serve_app.storage.lifecycle, quota.py); null = no limit, as before.
    retention_days: PositiveInt | None = None  # results older than this are deleted; null = kept forever
    max_results_per_user: PositiveInt | None = None  # stored results per user; null = unlimited
    max_bytes_per_user: PositiveInt | None = None  # bytes of stored GLBs per user; null = unlimited
    # over a limit: refuse the upload (ERROR_QUOTA_EXCEEDED) or delete the user's oldest results to make room
    quota_policy: Literal["refuse", "evict_oldest"] = "refuse"
    expire_every_s: PositiveFloat = 3600.0  # the export replicas apply retention_days this often
    expire_batch: PositiveInt = 500  # results deleted per expiry run at most (bounded work, short transactions)
    # the model outputs an export needs, kept beside each GLB (out/<day>/<hash>.npz) for this long so the
    # result can be exported again with other options (serve_app.storage.predictions); 0 = none stored
    predictions_ttl_s: NonNegativeInt = 604800

    def __post_init__(self) -> None:
        check_fields(self, "storage")
        if self.database_url_env or self.database_url_file:
            url = resolve_database_url(self.database_url, self.database_url_env, self.database_url_file)
            object.__setattr__(self, "database_url", url)
            object.__setattr__(self, "database_url_env", "")
            object.__setattr__(self, "database_url_file", "")


@dataclass(frozen=True)
class AuthSettings:
    max_failures: PositiveInt = 5  # failed logins per username or address before slowing down
    failure_window_s: PositiveFloat = 300.0  # failures older than this are forgotten
    lockout_s: NonNegativeFloat = 30.0  # how long a throttled username/address is refused
    known_address_s: NonNegativeFloat = 30 * 86400.0  # a username lockout spares addresses it logged in from this recently
    account_recheck_s: NonNegativeFloat = 5.0  # a session re-reads its account (disabled? VIP?) at most this stale
    # LOGINs waiting for a password check (two run at once, ~0.2 s each); more are refused at once:
    # 32 is a few seconds of waiting, and a flood cannot hold memory or delay logins any longer
    max_login_queue: NonNegativeInt = 32

    def __post_init__(self) -> None:
        check_fields(self, "auth")


@dataclass(frozen=True)
class ModelSettings:
    checkpoint: str = "model.pt"  # facebook/VGGT-1B state dict, relative to the working dir
    preset: str = "vggt-1b"  # "tiny" is an untrained demo/test model
    device: Device = "auto"  # auto: cuda when available, else cpu
    weights_bf16: bool = False  # hold weights in bf16 on GPU (halves weight memory)
    head_chunk_frames: PositiveInt = 8  # frames per DPT head chunk (memory vs speed)
    preprocess_mode: Literal["crop", "pad"] = "crop"  # as upstream's default
    seed: int = 0  # only used to initialise untrained presets
    # CPU threads of the forward pass: 0 leaves torch's default, -1 every core
    torch_threads: Annotated[int, Ge(-1)] = 0

    def __post_init__(self) -> None:
        check_fields(self, "model")


@dataclass(frozen=True)
class FrameSettings:
    fps: PositiveFloat = 0.4  # frames sampled per second of video (existing service default)
    max_frames: PositiveInt = 64  # frames per video after even-spacing cap
    sharpest: bool = False  # pick the sharpest frame in each sampling window
    max_images: PositiveInt = 20  # images per IMAGE request (the app sends at most 20)
    max_image_pixels: PositiveInt = 50_000_000  # decoded pixels per image; bigger is refused
    # width x height of all images of one IMAGE request, read from their headers before decoding;
    # more is refused: 20 photos of a 48 MP phone (8064x6048) pass, and decoding stays under ~1 GP
    max_request_pixels: PositiveInt = 1_000_000_000
    # a photo is decoded at no less than decode_oversample x the model input on every side (a JPEG at the
    # smallest DCT scale covering it), then resized once to the model input (518 px across, as
    # model.preprocess_mode): 2 keeps the model input > 40 dB PSNR from a full-size decode's
    # (serve_app.frames.bounds, docs/BENCHMARKS.md)
    decode_oversample: Annotated[float, Ge(1.0)] = 2.0
    # the most a photo is decoded at, whatever the model would want (a very tall photo in crop mode);
    # video frames are reduced to it as they are decoded
    decode_max_pixels: PositiveInt = 2048 * 1536
    # photos decoded at once, each on its own thread (Pillow decodes without the GIL), and only as many
    # as hold no more pixels together than one of max_image_pixels; 0 = the CPUs of the replica's process
    decode_workers: NonNegativeInt = 0
    max_side: NonNegativeInt = 0  # video frames: 0 = no further bound; else also cap the long side
    # frames the decoder may output for one video, kept or not: 10 minutes at 30 fps decoded whole
    # (sampling decodes only the groups of pictures its samples need, far fewer for honest videos)
    max_decoded_frames: PositiveInt = 18_000
    # wall time of one video's decode: sampling a 5-minute 4K phone video (64 samples, one group of
    # pictures each, ~4000 frames) takes well under a minute on the decode replica's cores
    max_decode_s: PositiveFloat = 120.0

    def __post_init__(self) -> None:
        check_fields(self, "frames")


@dataclass(frozen=True)
class PipelineSettings:
    # runs of a reconstruction whose stage replica died (crash, OOM kill, node loss) before ERROR_INTERNAL;
    # an upload that has lost a replica twice is not run again (ERROR_UNPROCESSABLE_UPLOAD): its input is the cause
    attempts: PositiveInt = 3
    retry_delay_s: NonNegativeFloat = 1.0  # pause before the first retry, doubled for each further one: Serve replaces the replica

    def __post_init__(self) -> None:
        check_fields(self, "pipeline")


@dataclass(frozen=True)
class ShareSettings:
    viewer_dir: str = ""  # the npm `three` package the share pages use; "" = this checkout's .venv/web/

    def __post_init__(self) -> None:
        check_fields(self, "share")


@dataclass(frozen=True)
class WebSettings:
    """The browser front's JSON API (`serve_app.http.api`, docs/HTTP_API.md)."""

    session_ttl_s: PositiveFloat = 7 * 86400.0  # a browser login lasts this long (the cookie's Max-Age)
    events_max_s: PositiveFloat = 300.0  # a job's event stream closes after this; the page reconnects
    # addresses/networks (comma-separated) of reverse proxies whose X-Forwarded-Proto (the session cookie is
    # then marked Secure) and X-Forwarded-For (the client address logins are throttled by) are believed; "" = none
    trusted_proxies: str = ""

    def __post_init__(self) -> None:
        check_fields(self, "web")
        try:
            parse_trusted(self.trusted_proxies)
        except ValueError as exc:
            raise SettingError("web.trusted_proxies", str(exc)) from None


@dataclass(frozen=True)
class HealthSettings:
    """The readiness probe `GET /readyz` (`serve_app.http.health`, docs/OPERATIONS.md)."""

    # each readiness check's time to answer (TCP listener, model, database incl. its connect, storage root), so
    # /readyz answers 503 within about this long of a hung component. At most 4 s: a database that hangs rather
    # than refusing is seen only after it, and /readyz must turn 503 within 5 s of the database going away
    # with a second left for the balancer's probe interval; 2 s leaves a slow but healthy database time to answer
    check_timeout_s: Annotated[float, Gt(0), Le(4.0)] = 2.0

    def __post_init__(self) -> None:
        check_fields(self, "health")


@dataclass(frozen=True)
class AppSettings:
    storage: StorageSettings = field(default_factory=StorageSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    frames: FrameSettings = field(default_factory=FrameSettings)
    export: ExportOptions = field(default_factory=ExportOptions)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    share: ShareSettings = field(default_factory=ShareSettings)
    web: WebSettings = field(default_factory=WebSettings)
    health: HealthSettings = field(default_factory=HealthSettings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> AppSettings:
        """Settings from nested mappings ({"model": {"preset": "tiny"}, ...}; dotted keys are nested).

        Unknown keys, values of the wrong type, out of range or not among the
        choices are refused: one `SettingError` line naming the setting.
        """
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise SettingError("args", f"settings must be a mapping of sections, got {data!r}")
        nested = nest_dotted_keys(dict(data))
        for name in nested:
            if name not in SECTIONS:
                raise unknown_setting(str(name))
        return cls(**{name: section_from(name, values) for name, values in nested.items()})

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], app_name: str | None = None) -> AppSettings:
        """Settings from a Serve config (the `args` of application `app_name`, or of its only
        application) or from a plain settings mapping in YAML. Errors are ValueError/OSError."""
        import yaml

        with open(path, encoding="utf-8") as f:
            doc: Any = yaml.safe_load(f) or {}
        if isinstance(doc, dict) and isinstance(doc.get("applications"), list):
            apps = [a for a in doc["applications"] if isinstance(a, dict)]
            named = [a for a in apps if app_name is not None and a.get("name") == app_name]
            if not named and len(apps) != 1:
                raise ValueError(f"no application named {app_name!r} in {path}")
            doc = (named or apps)[0].get("args") or {}
        if not isinstance(doc, dict):
            raise ValueError(f"{path} holds no settings mapping")
        return cls.from_dict(doc)


def nest_dotted_keys(args: dict[str, Any]) -> dict[str, Any]:
    """`serve run ... model.preset=tiny` style keys to sections: {"model.preset": "tiny", "proxy.port": "4568"}
    nests to {"model": {"preset": "tiny"}, "proxy": {"port": 4568}} (string values of dotted keys are
    parsed as YAML scalars); nested dicts pass through."""
    import yaml

    out: dict[str, Any] = {}
    for key, value in args.items():
        if isinstance(key, str) and "." in key:
            section, name = key.split(".", 1)
            if isinstance(value, str) and value != "":
                value = yaml.safe_load(value)
            out.setdefault(section, {})[name] = value
        elif isinstance(value, dict):
            out.setdefault(key, {}).update(value)
        else:
            out[key] = value
    return out


SECTIONS: dict[str, type] = {f.name: f.default_factory for f in dataclasses.fields(AppSettings)}  # type: ignore[misc]


def section_from(name: str, values: Any) -> Any:
    """Section `name` of the settings from its mapping; unknown keys and bad values are a SettingError."""
    section_cls = SECTIONS[name]
    if not isinstance(values, Mapping):
        raise SettingError(name, f"setting {name} must be a mapping of its settings, got {values!r}")
    known = {f.name for f in dataclasses.fields(section_cls)}
    for key in values:
        if key not in known:
            raise unknown_setting(f"{name}.{key}")
    return section_cls(**values)


def unknown_setting(setting: str) -> SettingError:
    """The error for a key no section has ("model.presett") or a section that does not exist."""
    return SettingError(setting, f"unknown setting {setting}")
