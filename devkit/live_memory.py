"""Peak bytes of the tensors alive during a piece of PyTorch code, independent of any allocator.

    with LiveTensorBytes() as meter:
        model(x)
    meter.peak          # most bytes held at once by tensors created inside the block

Every tensor an operator returns is counted by its storage until that storage
is freed; tensors that existed before the block (weights, inputs) are not.
This is what torch's CUDA caching allocator would report as allocated,
without fragmentation or kernel workspaces, and it works on the CPU, so the
memory model of the runner can be checked without a GPU.
"""

from __future__ import annotations

import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveTensorBytes(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._sizes: dict[int, int] = {}  # storage address -> bytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        tensors_in = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        inputs = {t.untyped_storage().data_ptr() for t in tensors_in}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self._count(t.untyped_storage())  # views and in-place results hold no new memory
        return out

    def _count(self, storage) -> None:
        key = storage.data_ptr()
        if key in self._sizes or storage.nbytes() == 0:
            return  # a view of a storage already counted, or an empty one
        self._sizes[key] = storage.nbytes()
        self.live += storage.nbytes()
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._release, key)

    def _release(self, key: int) -> None:
        self.live -= self._sizes.pop(key, 0)
