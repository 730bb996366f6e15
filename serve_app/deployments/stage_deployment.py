"""The body every stage deployment shares: build one stage, run it timed, report health.

A stage deployment class is a plain subclass of `StageDeployment` naming the
stage class it wraps (`stage_class`) and its Serve options
(`serve_options`); Ray is imported nowhere here. `serve.deployment(...)`
wraps each class in `serve_deployments.py`, under the class's name. `run`
is the only method the pipeline calls. Serve passes the previous
deployment's response in as an object reference, so a stage's output goes
straight to the next replica.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from serve_app.config import AppSettings
from serve_app.metrics import service_metrics
from serve_app.stages import Stage, run_stage

from .replica_logging import use_serve_logging


class StageDeployment:
    stage_class: ClassVar[type[Stage]]
    # Keyword arguments of `serve.deployment` (each states its CPU share: see the package docstring).
    serve_options: ClassVar[dict[str, Any]]

    def __init__(self, settings: AppSettings) -> None:
        use_serve_logging()
        tune_malloc()
        self.stage = self.stage_class(settings)
        self.metrics = service_metrics()

    @classmethod
    def placement(cls, settings: AppSettings) -> tuple[AppSettings, dict[str, Any]]:
        """The settings this deployment is bound with, and its `.options(...)` overrides."""
        return settings, {}

    def run(self, item: Any) -> Any:
        return run_stage(self.stage, item, self.metrics)

    def check_health(self) -> None:
        # Serve calls this every health_check_period_s (10 s by default).
        release_free_memory()
        self.stage.check_health()


def classes_by_stage(
    classes: Iterable[type[StageDeployment]], stages: Sequence[type[Stage]]
) -> dict[type[Stage], type[StageDeployment]]:
    """Each stage's deployment class, in the order of `stages`, read from the classes' `stage_class`.

    Raises TypeError unless every stage has exactly one class and every class wraps one of `stages`.
    """
    found: dict[type[Stage], list[type[StageDeployment]]] = {stage: [] for stage in stages}
    strays = []
    for cls in classes:
        if cls.stage_class in found:
            found[cls.stage_class].append(cls)
        else:
            strays.append(f"{cls.__name__} wraps {cls.stage_class.__name__}, which is not a declared stage")
    problems = strays + [
        f"{stage.__name__} has {len(wrapping)} deployment classes ({', '.join(c.__name__ for c in wrapping) or 'none'})"
        for stage, wrapping in found.items()
        if len(wrapping) != 1
    ]
    if problems:
        raise TypeError("each stage needs exactly one deployment class: " + "; ".join(problems))
    return {stage: wrapping[0] for stage, wrapping in found.items()}


def release_free_memory() -> None:
    """Give freed heap pages back to the OS, and unmap the object store's pages from this process.

    Called from the replicas' periodic `check_health`, so an idle replica shrinks
    back within `health_check_period_s` after a reconstruction:

    * glibc keeps freed heap pages after a big request (`malloc_trim`; a no-op off glibc);
    * Ray maps its whole object store (a shared file, `plasma*` in /dev/shm or the
      plasma directory) into every worker, and each page a replica once read or wrote
      stays in its RSS. Objects come and go at different places in the store, so under
      sustained load a stage replica's RSS rose with every part of the store it had
      touched (the export replica by ~0.5 GiB in 3 minutes of a soak, all of it shared
      pages; its own heap stayed flat). Those pages belong to the store, which holds
      them whether or not a replica maps them; dropping the mapping's pages
      (MADV_DONTNEED on a shared mapping: the data stay in the file, a later access
      maps them again) leaves each replica's RSS what it really uses.
    """
    trim = _libc_function("malloc_trim")
    if trim is not None:
        trim(0)
    drop_mapped_pages(object_store_mappings())


M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # mallopt parameters, <malloc.h>
OWN_MAPPING_BYTES = 1 << 20  # heap blocks this large or larger get a mapping of their own, unmapped when freed
MALLOC_ARENAS = 2  # glibc's default is up to 8 per core, one per allocating thread


def tune_malloc() -> bool:
    """Keep a replica's heap from holding freed memory under a long stream of big requests; whether it
    applied (False off glibc). Called once, as a replica starts.

    glibc maps a block of 128 KiB or more on its own, but each time such a block is freed it raises
    that threshold to the block's size (up to 32 MiB), so the frames, GLBs and npz buffers of later
    requests (a few MiB each) come from the heap instead, and the holes they leave between smaller
    long-lived blocks are kept. An hour's soak showed it: the export replica's own memory rose by
    ~1.5 MiB a minute while its Python objects stayed the same, with more of its heap free than in
    use. A fixed threshold (which also stops that raising) gives every block of OWN_MAPPING_BYTES or
    more back to the OS when freed; two arenas bound the free memory kept beside the replica's
    threads (37 in an export replica)."""
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, OWN_MAPPING_BYTES)) and bool(mallopt(M_ARENA_MAX, MALLOC_ARENAS))


MADV_DONTNEED = 4  # <sys/mman.h> on Linux
OBJECT_STORE_FILE_PREFIX = "plasma"  # Ray's object store file name, in /dev/shm or its plasma directory


def object_store_mappings(maps_path: str = "/proc/self/maps") -> list[tuple[int, int]]:
    """(start address, length) of each shared mapping of Ray's object store in this process; [] off Linux."""
    try:
        with open(maps_path) as maps:
            lines = maps.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or not fields[1].endswith("s"):  # only shared mappings: private ones would lose data
            continue
        name = os.path.basename(fields[5].removesuffix(" (deleted)"))
        if name.startswith(OBJECT_STORE_FILE_PREFIX):
            start, end = (int(address, 16) for address in fields[0].split("-"))
            found.append((start, end - start))
    return found


def drop_mapped_pages(ranges: Iterable[tuple[int, int]]) -> None:
    """Unmap the resident pages of shared file mappings (their contents stay in the file); a no-op off glibc."""
    madvise = _libc_function("madvise")
    if madvise is None:
        return
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    for start, length in ranges:
        madvise(start, length, MADV_DONTNEED)  # a range that cannot be dropped (locked) is left as it is


@functools.cache
def _libc_function(name: str) -> Any:
    """glibc's function `name`, or None where the C library has none."""
    try:
        return getattr(ctypes.CDLL("libc.so.6"), name)
    except (OSError, AttributeError):
        return None
