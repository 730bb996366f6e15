"""Our VGGT-1B implementation: model, geometry and checkpoint loading.

    from serve_app.vggt import VGGT, VGGTConfig, load_model
    model = load_model("model.pt")            # VGGT-1B, eval mode
    out = model(images)                       # images [S, 3, H, W] in [0, 1]
"""

from .checkpoint import CheckpointError, CheckpointNotFoundError, load_checkpoint, load_model
from .config import PRESETS, VGGTConfig, preset
from .model import VGGT

__all__ = [
    "PRESETS",
    "VGGT",
    "VGGTConfig",
    "preset",
    "CheckpointError",
    "CheckpointNotFoundError",
    "load_checkpoint",
    "load_model",
]
