"""`scripts/bench_malloc.py`: what `tune_malloc` costs each stage's CPU time, against glibc's defaults, in one run.

    .venv/bin/python scripts/bench_malloc.py [--photos 3] [--repeats 5] [--rounds 2] [--torch-threads 1]

One request of the load benchmarks (`--photos` 320x240 photos, tiny model on
CPU, the result stored with its predictions in a temporary SQLite database
and folder) runs through the in-process pipeline in a fresh process per
allocator setting: `default` (glibc as it starts), `tuned`
(`serve_app.deployments.stage_deployment.tune_malloc` first, as a tuned
replica starts) and `tuned+huge` (tuned, in a process started with
`GLIBC_TUNABLES=glibc.malloc.hugetlb=1`: glibc asks for transparent huge
pages on the memory it maps, so a fresh block of a few MiB is zero-filled
in 2 MiB pages, not faulted in 4 KiB at a time; the kernel must allow them:
/sys/kernel/mm/transparent_hugepage/enabled `madvise` or `always`). Each
process runs the request `--repeats` times after one warm-up and reports
each stage's median CPU milliseconds and minor page faults; the settings
take turns `--rounds` times (the machine's pace drifts) and the lowest
median per setting counts. Printed: a row per stage, each setting's CPU ms
and its ratio to `default`, then the page faults. Linux only (glibc's
`mallopt`; the tunable needs glibc 2.35 or later, older ones ignore it).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ("default", "tuned", "tuned+huge")
HUGE_PAGES_TUNABLE = "glibc.malloc.hugetlb=1"  # glibc madvises MADV_HUGEPAGE on its mappings (glibc >= 2.35)


def measure(setting: str, photos: int, repeats: int, torch_threads: int) -> dict[str, list[float]]:
    """[median CPU ms, median minor page faults] per stage of `repeats` requests in this process, allocator
    `setting` applied first (the huge pages' tunable is read as a process starts: `in_fresh_process` sets it)."""
    if setting.startswith("tuned"):
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
        faults: dict[str, list[int]] = {stage.name: [] for stage in stages}
        for n in range(repeats + 1):
            job = Job(user_id=1, original_name=f"request {n}", source_digest=f"{n:064x}")
            item = Upload(job, images=tuple(images[n * photos : (n + 1) * photos]))
            for stage in stages:
                start, start_faults = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                item = stage.run(item)
                if n:  # the first request warms up
                    cpu_ms[stage.name].append((time.process_time() - start) * 1000)
                    faults[stage.name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start_faults)
    return {name: [statistics.median(cpu_ms[name]), statistics.median(faults[name])] for name in cpu_ms}


def in_fresh_process(setting: str, photos: int, repeats: int, torch_threads: int) -> dict[str, list[float]]:
    code = (
        "import json\nfrom devkit.malloc_bench import measure\n"
        f"print(json.dumps(measure({setting!r}, {photos}, {repeats}, {torch_threads})))"
    )
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ)
    if setting == "tuned+huge":
        env["GLIBC_TUNABLES"] = ":".join(filter(None, [env.get("GLIBC_TUNABLES"), HUGE_PAGES_TUNABLE]))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(photos: int, repeats: int, rounds: int, torch_threads: int) -> dict[str, dict[str, list[float]]]:
    """{setting: {stage: [lowest median CPU ms, its page faults]}}, printed as tables with the ratios to default."""
    best: dict[str, dict[str, list[float]]] = {setting: {} for setting in SETTINGS}
    for _ in range(rounds):
        for setting in SETTINGS:
            for stage, measured in in_fresh_process(setting, photos, repeats, torch_threads).items():
                if stage not in best[setting] or measured[0] < best[setting][stage][0]:
                    best[setting][stage] = measured
    others = SETTINGS[1:]
    print(f"{photos} photos of 320x240, tiny model, {torch_threads} torch thread(s); median CPU ms per request")
    header = ["stage", *(f"{setting} ms" for setting in SETTINGS), *(f"{setting} / default" for setting in others)]
    print("| " + " | ".join(header) + " |\n|" + " --- |" * len(header))
    for stage, (default_ms, _) in best["default"].items():
        cells = [f"{best[setting][stage][0]:.1f}" for setting in SETTINGS]
        ratios = [f"{best[setting][stage][0] / default_ms:.2f}x" for setting in others]
        print("| " + " | ".join([stage, *cells, *ratios]) + " |")
    print("\nminor page faults per request (thousands), same processes")
    print("| stage | " + " | ".join(SETTINGS) + " |\n|" + " --- |" * (len(SETTINGS) + 1))
    for stage in best["default"]:
        print("| " + " | ".join([stage, *(f"{best[setting][stage][1] / 1000:.1f}k" for setting in SETTINGS)]) + " |")
    return best
