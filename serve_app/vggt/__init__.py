"""Our VGGT-1B implementation: model, geometry and checkpoint loading.

VGGT is the Visual Geometry Grounded Transformer of Wang, Chen, Karaev,
Vedaldi, Rupprecht and Novotny, "VGGT: Visual Geometry Grounded Transformer",
CVPR 2025, released by Meta AI and the University of Oxford's VGG at
https://github.com/facebookresearch/vggt. This package reimplements its
architecture (commit a288dd0 of that repository's main branch) from the
paper and from reading the upstream code, written anew under this
repository's MIT license: no upstream code is copied. It is
checkpoint-compatible: the state-dict keys match the public facebook/VGGT-1B
`model.pt`, whose weights are Meta's and come under Meta's own license (see
LICENSE.txt), and tests/vggt/test_parity.py reproduces the upstream model's
outputs exactly with synthetic weights. The point-tracking head is not
implemented.

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
