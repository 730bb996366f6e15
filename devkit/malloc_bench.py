"""`scripts/bench_malloc.py`: what `tune_malloc` costs each stage's CPU time, against glibc's defaults, in one run.

    .venv/bin/python scripts/bench_malloc.py [--photos 3] [--repeats 5] [--rounds 2] [--torch-threads 1]

One request of the load benchmarks (`--photos` 320x240 photos, tiny model on
CPU, the result stored with its predictions in a temporary SQLite database
and folder) runs through the in-process pipeline in a fresh process per
allocator setting: `default` (glibc as it starts) and `tuned`
(`serve_app.deployments.stage_deployment.tune_malloc` first, as a tuned
replica starts). Each process runs the request `--repeats` times after one
warm-up and reports each stage's median CPU milliseconds; the two settings
take turns `--rounds` times (the machine's pace drifts) and the lowest
median per setting counts. Printed: a row per stage, both settings and the
ratio tuned / default. Linux only (glibc's `mallopt`).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ("default", "tuned")


def measure(setting: str, photos: int, repeats: int, torch_threads: int) -> dict[str, float]:
    """Median CPU ms per stage of `repeats` requests in this process, allocator `setting` applied first."""
    if setting == "tuned":
        from serve_app.deployments.stage_deployment import tune_malloc

        if not tune_malloc():
            raise SystemExit("tune_malloc did not apply (not glibc)")
    from devkit.media import synthetic_photos
    from devkit.users import create_users
    from serve_app.config import AppSettings
    from serve_app.pipeline import Pipeline
    from serve_app.stages import STAGES
    from serve_app.stages.messages import Job, Upload

    with tempfile.TemporaryDirectory(prefix="bench_malloc_") as folder:
        url = f"sqlite:///{folder}/service.db"
        create_users(url, {"bench": False}, "bench-password")
        model = {"preset": "tiny", "device": "cpu", "torch_threads": torch_threads}
        pipeline = Pipeline(AppSettings.from_dict({"model": model, "storage": {"database_url": url, "storage_root": folder}}))
        stages = [pipeline.stage(cls) for cls in STAGES]
        images = synthetic_photos(photos * (repeats + 1), 320, 240)
        cpu_ms: dict[str, list[float]] = {stage.name: [] for stage in stages}
        for n in range(repeats + 1):
            job = Job(user_id=1, original_name=f"request {n}", source_digest=f"{n:064x}")
            item = Upload(job, images=tuple(images[n * photos : (n + 1) * photos]))
            for stage in stages:
                start = time.process_time()
                item = stage.run(item)
                if n:  # the first request warms up
                    cpu_ms[stage.name].append((time.process_time() - start) * 1000)
    return {name: statistics.median(values) for name, values in cpu_ms.items()}


def in_fresh_process(setting: str, photos: int, repeats: int, torch_threads: int) -> dict[str, float]:
    code = (
        "import json\nfrom devkit.malloc_bench import measure\n"
        f"print(json.dumps(measure({setting!r}, {photos}, {repeats}, {torch_threads})))"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(photos: int, repeats: int, rounds: int, torch_threads: int) -> dict[str, dict[str, float]]:
    """{setting: {stage: lowest median CPU ms}}, printed as a table with the ratio tuned / default."""
    best: dict[str, dict[str, float]] = {setting: {} for setting in SETTINGS}
    for _ in range(rounds):
        for setting in SETTINGS:
            for stage, ms in in_fresh_process(setting, photos, repeats, torch_threads).items():
                best[setting][stage] = min(ms, best[setting].get(stage, ms))
    print(f"{photos} photos of 320x240, tiny model, {torch_threads} torch thread(s); median CPU ms per request")
    print("| stage | default ms | tuned ms | tuned / default |\n| --- | --- | --- | --- |")
    for stage, default_ms in best["default"].items():
        tuned_ms = best["tuned"][stage]
        print(f"| {stage} | {default_ms:.1f} | {tuned_ms:.1f} | {tuned_ms / default_ms:.2f}x |")
    return best
