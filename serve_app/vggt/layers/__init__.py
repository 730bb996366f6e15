"""Transformer building blocks shared by DINO, the aggregator and the heads."""

from .attention import Attention
from .block import Block
from .layer_scale import LayerScale
from .mlp import Mlp
from .rope import RotaryEmbedding2D, apply_rope

__all__ = ["Attention", "Block", "LayerScale", "Mlp", "RotaryEmbedding2D", "apply_rope"]
