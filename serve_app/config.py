"""Every setting of the service, typed, in one place.

`AppSettings.from_dict(args)` turns the `args` block of `config/serve.yaml`
(or a CLI's options) into frozen dataclasses once, at start; nothing changes
them afterwards. These dataclasses are the one declaration of every setting:
`serve_app.app_args` makes the strict pydantic model Serve validates the
YAML with from their fields, and their `__post_init__` checks ranges and
choices. Unknown keys are an error, so a typo in the YAML fails loudly.
Two sections are defined beside the code they configure: `proxy` is the TCP
server's `tcp_proxy.settings.ProxySettings`, `export` is
`serve_app.export.options.ExportOptions`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

from serve_app.export.options import ExportOptions
from tcp_proxy.settings import ProxySettings

Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class StorageSettings:
    database_url: str = "sqlite:///./vggt_app.db"  # existing deployments keep this file
    storage_root: str = "."  # GLBs go to <storage_root>/out/YYYY-MM-DD/<hash>.glb; or s3://bucket/prefix
    # an S3-compatible service other than AWS (MinIO, Ceph): its URL; "" = AWS's own endpoint.
    # Credentials never go here: the standard AWS variables and files supply them.
    s3_endpoint_url: str = ""
    reuse_results: bool = True  # the same upload by the same user answers the stored GLB (serve_app.result_cache)


@dataclass(frozen=True)
class AuthSettings:
    max_failures: int = 5  # failed logins per username or address before slowing down
    failure_window_s: float = 300.0  # failures older than this are forgotten
    lockout_s: float = 30.0  # how long a throttled username/address is refused
    known_address_s: float = 30 * 86400.0  # a username lockout spares addresses it logged in from this recently
    account_recheck_s: float = 5.0  # a session re-reads its account (disabled? VIP?) at most this stale


@dataclass(frozen=True)
class ModelSettings:
    checkpoint: str = "model.pt"  # facebook/VGGT-1B state dict, relative to the working dir
    preset: str = "vggt-1b"  # "tiny" is an untrained demo/test model
    device: Device = "auto"  # auto: cuda when available, else cpu
    weights_bf16: bool = False  # hold weights in bf16 on GPU (halves weight memory)
    head_chunk_frames: int = 8  # frames per DPT head chunk (memory vs speed)
    preprocess_mode: Literal["crop", "pad"] = "crop"  # as upstream's default
    seed: int = 0  # only used to initialise untrained presets
    torch_threads: int = 0  # CPU threads of the forward pass: 0 leaves torch's default, -1 every core

    def __post_init__(self):
        _check_choice("model.device", self.device, ("auto", "cpu", "cuda"))
        _check_choice("model.preprocess_mode", self.preprocess_mode, ("crop", "pad"))
        _check_positive("model.head_chunk_frames", self.head_chunk_frames)


@dataclass(frozen=True)
class FrameSettings:
    fps: float = 0.4  # frames sampled per second of video (existing service default)
    max_frames: int = 64  # frames per video after even-spacing cap
    sharpest: bool = False  # pick the sharpest frame in each sampling window
    max_images: int = 20  # images per IMAGE request (the app sends at most 20)
    max_image_pixels: int = 50_000_000  # decoded pixels per image; bigger is refused
    # width x height of all images of one IMAGE request, read from their headers before decoding;
    # more is refused: 20 photos of a 48 MP phone (8064x6048) pass, and decoding stays under ~1 GP
    max_request_pixels: int = 1_000_000_000
    # every photo and video frame is reduced to this many pixels as it is decoded: 2048x1536 keeps
    # >= 2x the 518 px the model's preprocessing uses in crop and pad mode (serve_app.frames.bounds)
    decode_max_pixels: int = 2048 * 1536
    max_side: int = 0  # video frames: 0 = no further bound; else also cap the long side

    def __post_init__(self):
        positive = ("fps", "max_frames", "max_images", "max_image_pixels", "max_request_pixels", "decode_max_pixels")
        for name in positive:
            _check_positive(f"frames.{name}", getattr(self, name))
        if self.max_side < 0:
            raise ValueError(f"setting frames.max_side must be 0 (off) or positive, got {self.max_side!r}")


@dataclass(frozen=True)
class PipelineSettings:
    attempts: int = 3  # runs of a reconstruction whose stage replica died (crash, OOM kill, node loss) before ERROR_INTERNAL
    retry_delay_s: float = 1.0  # pause before the first retry, doubled for each further one: Serve replaces the replica

    def __post_init__(self):
        _check_positive("pipeline.attempts", self.attempts)
        if self.retry_delay_s < 0:
            raise ValueError(f"setting pipeline.retry_delay_s must be 0 or more, got {self.retry_delay_s!r}")


@dataclass(frozen=True)
class ShareSettings:
    viewer_dir: str = ""  # the npm `three` package the share pages use; "" = this checkout's .venv/web/


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

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "AppSettings":
        """Settings from nested dicts ({"model": {"preset": "tiny"}, ...}; dotted keys are nested).

        Unknown keys and values of the wrong type are refused by the strict model
        of `serve_app.app_args`, ranges and choices by each section; every problem
        is one ValueError line naming the setting.
        """
        from serve_app.app_args import settings_from_args  # pydantic: not needed by the model side

        return settings_from_args(data)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], app_name: str | None = None) -> "AppSettings":
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


def _check_choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"setting {key} must be one of {list(choices)}, got {value!r}")


def _check_positive(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"setting {key} must be positive, got {value!r}")
