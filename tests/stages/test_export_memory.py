"""ExportStage keeps nothing per request: many stored exports in a row leave Python's traced memory where it was."""

from __future__ import annotations

import gc
import tracemalloc

from stage_doubles import small_predictions

from serve_app.config import AppSettings
from serve_app.stages import ExportStage, Job, Predictions

WARM_UP = 20  # the first runs fill what is filled once (imports, SQLAlchemy's statement cache, pools)
RUNS = 40
# Bytes per run. Measured: ~500 (20 KiB, most of it one dict of SQLAlchemy's pool growing once), falling as runs go
# (the libraries' dicts reach their size). Keeping anything per request (its GLB: over 1 KiB here) passes it.
KEPT_PER_RUN = 1024


def test_repeated_stored_exports_keep_no_memory(owned_store):
    stage = ExportStage(AppSettings(), owned_store)
    item = Predictions(Job(7, "again"), small_predictions(2), 2)
    for _ in range(WARM_UP):
        stage.run(item)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(RUNS):
            stage.run(item)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < RUNS * KEPT_PER_RUN, f"{kept} bytes kept by {RUNS} exports"
    assert len(stage.run(item).glb) > KEPT_PER_RUN  # what a cache of results would keep
