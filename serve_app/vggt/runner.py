"""Frames in, numpy predictions out: the one entry point the service and the CLI use.

`InferenceRunner(settings)` builds the model once (loading the checkpoint,
or a seeded random init for the untrained "tiny" preset) and `.predict(frames)`
preprocesses, checks memory, runs the forward pass and derives cameras and
depth-unprojected points. `.predict(frames, progress=...)` also reports the
forward pass step by step (patch embedding, each aggregator block, camera
head, each frame chunk of the two DPT heads), through forward hooks that
exist only during that call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from serve_app.config import ModelSettings
from tcp_proxy.errors import ModelUnavailableError, NoFramesError, TooManyFramesError

from .checkpoint import CheckpointError, fetch_hint, load_model
from .config import VGGTConfig, preset
from .geometry import pose_encoding_to_extri_intri, unproject_depth_map_to_point_map
from .model import VGGT
from .preprocess import preprocess_images

log = logging.getLogger(__name__)

GiB = 1024**3
HEADROOM = 0.9  # use at most this share of the available memory for one forward pass
OUTPUT_KEYS = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")

MemoryProbe = Callable[[torch.device], "int | None"]
Progress = Callable[[int, int], None]  # (steps done, steps)


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one forward pass needs, by part; `working` excludes the resident weights.

    The aggregator's transients (`tokens`) are freed before the heads run, so
    the two phases share the kept layers and `working` is the larger phase.
    """

    weights: int
    tokens: int
    kept_layers: int
    head_chunk: int
    outputs: int

    @property
    def working(self) -> int:
        return self.kept_layers + max(self.tokens, self.head_chunk + self.outputs)

    @property
    def peak(self) -> int:
        return self.weights + self.working


def estimate_memory(
    cfg: VGGTConfig,
    frames: int,
    height: int,
    width: int,
    weight_bytes: int,
    act_bytes: int = 4,
) -> MemoryEstimate:
    """Peak-memory model of one forward pass: bytes held by live tensors, slightly above the real peak.

    With P = 1 + registers + (H/14)(W/14) tokens per frame, T = S*P, C = embed_dim
    and b = act_bytes (2 under bf16/fp16 autocast, 4 in float32):
      tokens     = whole + slice + 2*T*C*4
                   aggregator transients of the global block running, plus the
                   frame and global outputs of a kept layer. Up to t = token_chunk
                   tokens the block works on all tokens at once:
                     whole = T*C*(4 + 3*4 + 2*mlp_ratio*b), slice = 0
                   (float32 residual stream, qkv and the q/k LayerNorm + RoPE
                   copies, float32 even under autocast, or the MLP hidden).
                   Above it, only q, k, v, the attention output and residual
                   streams are whole, the rest is per slice of t tokens:
                     whole = T*C*max(4 + 4*b, 8 + b, 12), slice = t*C*(4 + 3*4 + 2*mlp_ratio*b)
                   Attention is fused (SDPA): no T x T score matrix is stored.
      kept       = len(cached_layers) * T * 2C * 4      the [S,P,2C] float32 layers the heads read
      head_chunk = c * max(3 * (8h*8w)*F, H*W*(F/2 + hidden + out) + (8h*8w)*F/2) * 4
                   one DPT chunk of c frames in float32: two F-channel fusion
                   maps at 8x the patch grid plus the smaller pyramid levels, or
                   the full-resolution output convolutions, whichever is larger
      outputs    = 2 * S*H*W*(1+1+3+1)*4              depth, points and confidences (+ concat copy)
    Checked against the live-tensor peak of real forward passes in
    tests/vggt/test_memory_estimate.py (float32 and bf16 autocast).
    """
    p = cfg.patch_size
    h, w = height // p, width // p
    P = 1 + cfg.num_register_tokens + h * w
    T = frames * P
    C = cfg.embed_dim
    c = min(cfg.head_chunk_frames, frames)
    F = cfg.dpt_features
    per_token = int(C * (4 + 3 * 4 + 2 * cfg.mlp_ratio * act_bytes))  # bytes of token-wise work per token
    if T <= cfg.token_chunk:
        whole, sliced = T * per_token, 0
    else:
        whole, sliced = T * C * max(4 + 4 * act_bytes, 8 + act_bytes, 12), cfg.token_chunk * per_token
    tokens = whole + sliced + 2 * T * C * 4
    kept = len(cfg.cached_layers) * T * 2 * C * 4
    fusion = 3 * (8 * h) * (8 * w) * F
    output_convs = height * width * (F // 2 + cfg.dpt_hidden + 4) + (8 * h) * (8 * w) * (F // 2)
    head = c * max(fusion, output_convs) * 4
    outputs = 2 * frames * height * width * 6 * 4
    return MemoryEstimate(weight_bytes, tokens, kept, head, outputs)


def available_memory(device: torch.device) -> int | None:
    """Free bytes on the device; None if unknown.

    cuda: mem_get_info's free bytes plus what torch's caching allocator holds
    unused; cpu: MemAvailable of /proc/meminfo.
    """
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return int(free + cached)
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def resolve_device(name: str) -> torch.device:
    """Device for a setting: "auto" -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailableError("device 'cuda' was requested but no CUDA GPU is available")
    return torch.device(name)


class InferenceRunner:
    """A loaded VGGT on one device; `predict` is thread-safe (one forward at a time)."""

    def __init__(self, settings: ModelSettings, *, memory_probe: MemoryProbe | None = None) -> None:
        device = resolve_device(settings.device)
        model = build_model(settings)
        self._setup(model, settings, device, memory_probe)

    @classmethod
    def from_model(
        cls,
        model: VGGT,
        settings: ModelSettings | None = None,
        *,
        device: torch.device | str | None = None,
        memory_probe: MemoryProbe | None = None,
    ) -> InferenceRunner:
        """Wrap an already built model (tests, benchmarks); no checkpoint is read."""
        settings = settings or ModelSettings()
        runner = cls.__new__(cls)
        dev = torch.device(device) if device is not None else resolve_device(settings.device)
        runner._setup(model, settings, dev, memory_probe)
        return runner

    def _setup(self, model: nn.Module, settings: ModelSettings, device: torch.device, probe: MemoryProbe | None):
        self.settings = settings
        self._device = device
        self._lock = threading.Lock()
        self._probe = probe or available_memory
        if device.type == "cuda":
            self._dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            self._dtype = torch.float32
        model = model.eval()
        if device.type == "cuda" and settings.weights_bf16 and self._dtype == torch.bfloat16:
            model.aggregator.to(torch.bfloat16)  # before the move: no float32 copy on the GPU; heads stay float32
        model = model.to(device)
        if model.config.head_chunk_frames != settings.head_chunk_frames:
            model.config = dataclasses.replace(model.config, head_chunk_frames=settings.head_chunk_frames)
        for param in model.parameters():
            param.requires_grad_(False)
        self.model = model
        self.config: VGGTConfig = model.config

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype of the aggregator: bf16/fp16 autocast on GPU, float32 on CPU."""
        return self._dtype

    @property
    def weight_bytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.model.parameters())

    def estimate(self, frames: int, height: int, width: int) -> MemoryEstimate:
        """Memory estimate for `frames` preprocessed frames of height x width."""
        act = torch.finfo(self._dtype).bits // 8
        return estimate_memory(self.config, frames, height, width, self.weight_bytes, act)

    def check_memory(self, frames: int, height: int, width: int) -> MemoryEstimate:
        """Raise TooManyFramesError when the estimate exceeds the free device memory."""
        est = self.estimate(frames, height, width)
        free = self._probe(self._device)
        if free is not None and est.working > HEADROOM * free:
            raise TooManyFramesError(
                f"{frames} frames at {height}x{width} need about {est.working / GiB:.1f} GiB of working "
                f"memory on {self._device.type} (peak about {est.peak / GiB:.1f} GiB with the weights), "
                f"but only {free / GiB:.1f} GiB is available; send fewer frames"
            )
        return est

    def predict(self, frames: Sequence[np.ndarray], progress: Progress | None = None) -> dict[str, np.ndarray]:
        """RGB uint8 frames [H,W,3] -> predictions (numpy float32, batch dim removed).

        `progress`, when given, is called with (steps done, steps) as the forward pass goes.

        pose_enc [S,9], depth [S,H,W,1], depth_conf [S,H,W], world_points [S,H,W,3],
        world_points_conf [S,H,W], extrinsic [S,3,4], intrinsic [S,3,3],
        world_points_from_depth [S,H,W,3], images [S,3,H,W] (the model input in [0,1]).
        """
        if len(frames) == 0:
            raise NoFramesError("no frames to reconstruct")
        cfg = self.config
        images = preprocess_images(frames, self.settings.preprocess_mode, cfg.img_size, cfg.patch_size)  # [S,3,H,W]
        S, _, H, W = images.shape
        with self._lock:  # one forward at a time: the check sees the memory it will have
            self.check_memory(S, H, W)
            start = time.perf_counter()
            with _step_hooks(self.model, S, progress) as finish:
                raw = self.run_model(images)
                finish()
            log.info(
                "VGGT forward: %d frames %dx%d on %s in %.2f s", S, H, W, self._device, time.perf_counter() - start
            )
        extrinsic, intrinsic = pose_encoding_to_extri_intri(raw["pose_enc"], (H, W))  # [1,S,3,4], [1,S,3,3]
        out = {k: _numpy(raw[k][0]) for k in OUTPUT_KEYS}
        out["extrinsic"] = _numpy(extrinsic[0])
        out["intrinsic"] = _numpy(intrinsic[0])
        out["world_points_from_depth"] = _numpy(
            unproject_depth_map_to_point_map(out["depth"], out["extrinsic"], out["intrinsic"])
        )
        out["images"] = images.numpy()
        return out

    def run_model(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Forward pass on a preprocessed batch [S,3,H,W] with this runner's device and precision.

        No memory check (see `check_memory`); CUDA out-of-memory -> TooManyFramesError.
        """
        x = images.to(self._device)
        if self._device.type == "cuda":
            autocast = torch.autocast("cuda", dtype=self._dtype)
        else:
            autocast = contextlib.nullcontext()  # float32 on CPU
        try:
            with torch.inference_mode(), autocast:
                return self.model(x)
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            raise TooManyFramesError(
                f"out of GPU memory running {images.shape[0]} frames at {images.shape[2]}x{images.shape[3]}; "
                "send fewer frames"
            ) from exc
        except RuntimeError as exc:  # CPU allocator failure
            if "can't allocate memory" not in str(exc):
                raise
            raise TooManyFramesError(
                f"out of memory running {images.shape[0]} frames on cpu; send fewer frames"
            ) from exc


@contextlib.contextmanager
def _step_hooks(model: nn.Module, frames: int, progress: Progress | None):
    """Forward hooks that call `progress` after each step of a forward pass over `frames` frames;
    yields the function that reports the pass as complete. Without `progress`: no hooks."""
    if progress is None:
        yield lambda: None
        return
    steps = _forward_steps(model, frames)
    total = sum(calls for _module, calls in steps) or 1
    done = 0

    def step(*_hook_args) -> None:
        nonlocal done
        if done < total:
            done += 1
            progress(done, total)

    def finish() -> None:  # the pass returned: done, even if a step was not seen
        nonlocal done
        if done < total:
            done = total
            progress(done, total)

    handles = [module.register_forward_hook(step) for module, _calls in steps]
    try:
        progress(0, total)
        yield finish
    finally:
        for handle in handles:
            handle.remove()


def _forward_steps(model: nn.Module, frames: int) -> list[tuple[nn.Module, int]]:
    """(module, calls per forward pass) of VGGT's steps; nothing for a model of another shape."""
    aggregator = getattr(model, "aggregator", None)
    config = getattr(model, "config", None)
    if aggregator is None or config is None:
        return []
    steps: list[tuple[nn.Module, int]] = []
    if isinstance(getattr(aggregator, "patch_embed", None), nn.Module):
        steps.append((aggregator.patch_embed, 1))
    for blocks in (getattr(aggregator, "frame_blocks", ()), getattr(aggregator, "global_blocks", ())):
        steps += [(block, 1) for block in blocks]
    if isinstance(getattr(model, "camera_head", None), nn.Module):
        steps.append((model.camera_head, 1))
    chunks = -(-frames // max(1, getattr(config, "head_chunk_frames", frames) or frames))
    for head in (getattr(model, "depth_head", None), getattr(model, "point_head", None)):
        last = getattr(getattr(head, "scratch", None), "output_conv2", None)  # once per frame chunk
        if isinstance(last, nn.Module):
            steps.append((last, chunks))
    return steps


def build_model(settings: ModelSettings) -> VGGT:
    """The model for `settings.preset`: seeded random init for "tiny", else the checkpoint."""
    cfg = preset(settings.preset, head_chunk_frames=settings.head_chunk_frames)
    if settings.preset == "tiny":
        with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state alone
            torch.manual_seed(settings.seed)
            model = VGGT(cfg)
        log.warning(
            "model preset 'tiny' is UNTRAINED (random init, seed %d): its reconstructions are noise; "
            "use it for tests and demos only",
            settings.seed,
            extra={"untrained_model": True},  # a CLI that warned already filters this record out
        )
        return model
    return load_trained_model(cfg, Path(settings.checkpoint))


def load_trained_model(cfg: VGGTConfig, path: Path) -> VGGT:
    """VGGT filled from the checkpoint at `path`; missing or corrupt -> ModelUnavailableError."""
    if not path.is_file():
        raise ModelUnavailableError(
            f"checkpoint {path.resolve()} not found: {fetch_hint(str(path.resolve()))} "
            f"(or `python scripts/fetch_weights.py` in a checkout), or set model.checkpoint"
        )
    start = time.perf_counter()
    try:
        model = load_model(path, cfg)  # reads the file before building anything
    except CheckpointError as exc:  # includes a file that vanished meanwhile
        raise ModelUnavailableError(f"checkpoint {path} is unusable: {exc}") from exc
    log.info("loaded %s in %.1f s", path, time.perf_counter() - start)
    return model


def _numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().float().cpu().numpy()
    return np.ascontiguousarray(x, dtype=np.float32)
