#!/usr/bin/env python
"""What the Ray Serve service costs over the in-process pipeline, and its memory.

    .venv/bin/python scripts/bench_service.py                       # tiny model on CPU, synthetic media
    .venv/bin/python scripts/bench_service.py --preset vggt-1b --checkpoint model.pt --device auto \\
        --video clip.mp4 --images photos/

In one run, one process:

1. Starts a local Ray cluster and deploys `serve_app.app:build_app` (no HTTP
   proxy, TCP port picked free, temp database and storage root), and builds
   `serve_app.pipeline.Pipeline` in this process with the same model settings
   (the same weights: a checkpoint, or the tiny preset's seeded init).
2. Speed: for a video and for 10 photos, alternately (`--repeats` times
   each, after one warm-up of each) times a reconstruction end to end through
   TCP (LOGIN done beforehand on the connection; from the first byte of the
   request to the last byte of the reply: upload, decode, inference, export,
   store, reply) and the same reconstruction in process
   (`Pipeline.run`: the same stages of `serve_app.stages.STAGES`). Prints the
   medians, the overhead and the goal: overhead < max(5 %, 0.3 s).
3. Idle memory of the whole service: the sum over every process of the Ray
   cluster (GCS, raylet, agents, Serve controller, the four replicas), as
   RSS and as PSS (shared pages split between processes; the fairer total).
4. Upload memory: while a 200 MB VIDEO payload (`--upload-mb`) streams in,
   samples the TCPIngress replica's RSS every 10 ms; prints its peak rise
   over the idle value against the payload size. The payload is random bytes
   (the answer is then ERROR_NO_FRAMES): what is measured is the upload,
   which the TCP server spools to a file in 1 MiB pieces.

The in-process model lives in this driver process, not in the service, so
it is not part of the service's memory figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

MiB = 1024 * 1024
LOGIN, IMAGE, VIDEO, GET_GLB = 1, 2, 3, 4
USER, PASSWORD = "bench", "bench-password"


# --- media ----------------------------------------------------------------------------


def _scene(width: int, height: int, shift: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([(x + shift) % 256, (y * 255 // height), ((x + y + 2 * shift) * 3) % 256], axis=-1)
    return img.astype(np.uint8)


def synthetic_photos(count: int, width: int, height: int) -> list[bytes]:
    from PIL import Image

    blobs = []
    for i in range(count):
        out = io.BytesIO()
        Image.fromarray(_scene(width, height, i * 17)).save(out, format="JPEG", quality=90)
        blobs.append(out.getvalue())
    return blobs


def synthetic_video(path: Path, seconds: float, width: int, height: int, fps: int = 30) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(_scene(width, height, i * 2), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def load_photos(folder: str) -> list[bytes]:
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    return [p.read_bytes() for p in paths]


# --- a minimal protocol client ----------------------------------------------------------


class Client:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        self.sock.close()

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 4 * MiB))
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
        return bytes(buf)

    def _block(self) -> bytes:
        return self._recv(struct.unpack(">I", self._recv(4))[0])

    def login(self) -> list:
        payload = json.dumps({"u": USER, "p": PASSWORD}).encode()
        self.sock.sendall(struct.pack(">BI", LOGIN, len(payload)) + payload)
        return json.loads(self._block())

    def reconstruction(self) -> tuple[str, bytes]:
        name = self._recv(struct.unpack(">I", self._recv(4))[0]).decode()
        return name, self._block()

    def images(self, blobs: list[bytes]) -> tuple[str, bytes]:
        parts = [struct.pack(">I", len(blobs))]
        for b in blobs:
            parts += [struct.pack(">I", len(b)), b]
        payload = b"".join(parts)
        self.sock.sendall(struct.pack(">BI", IMAGE, len(payload)) + payload)
        return self.reconstruction()

    def video_file(self, path: Path) -> tuple[str, bytes]:
        size = path.stat().st_size
        self.sock.sendall(struct.pack(">BI", VIDEO, size))
        with open(path, "rb") as f:
            self.sock.sendfile(f)
        return self.reconstruction()

    def video_stream(self, size: int, chunk: bytes) -> tuple[str, bytes]:
        self.sock.sendall(struct.pack(">BI", VIDEO, size))
        left = size
        while left:
            part = chunk[: min(left, len(chunk))]
            self.sock.sendall(part)
            left -= len(part)
        return self.reconstruction()


# --- memory -----------------------------------------------------------------------------


def cluster_processes():
    """Every process the local Ray cluster of this driver runs (its descendants)."""
    import psutil

    return psutil.Process(os.getpid()).children(recursive=True)


def memory_of(processes) -> tuple[int, int, dict[str, int]]:
    """(RSS sum, PSS sum, {name: RSS}) of live processes."""
    import psutil

    rss = pss = 0
    by_name: dict[str, int] = {}
    for proc in processes:
        try:
            info = proc.memory_full_info()
            name = _name(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        by_name[name] = by_name.get(name, 0) + info.rss
    return rss, pss, by_name


def _name(proc) -> str:
    cmd = proc.cmdline()
    if cmd and cmd[0].startswith("ray::"):
        return cmd[0]
    return os.path.basename(cmd[0]) if cmd else proc.name()


class PeakSampler(threading.Thread):
    """Samples one process's RSS until stopped; `.peak` in bytes."""

    def __init__(self, pid: int, interval_s: float = 0.01):
        super().__init__(daemon=True)
        import psutil

        self.proc = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = self.proc.memory_info().rss
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except Exception:
                return
            time.sleep(self.interval_s)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


# --- the run ----------------------------------------------------------------------------


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--checkpoint", default="model.pt")
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--video", help="a video file (default: a synthetic 25 s 640x360 H.264 clip)")
    p.add_argument("--images", help="a folder of photos (default: 10 synthetic 1024x768 JPEGs)")
    p.add_argument("--photos", type=int, default=10, help="photos per IMAGE request (default 10)")
    p.add_argument("--fps", type=float, default=0.4, help="video sampling rate (service default 0.4)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--upload-mb", type=int, default=200, help="size of the upload-memory payload (0: skip)")
    p.add_argument("--num-cpus", type=int, default=None, help="Ray's logical CPUs (default: the machine's)")
    p.add_argument("--json", help="also write the results to this JSON file")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    import ray
    from ray import serve

    from serve_app.app import build_app
    from serve_app.config import AppSettings, AuthSettings
    from serve_app.pipeline import Pipeline
    from serve_app.stages import STAGES, ExportStage, InferenceStage, Job, Upload
    from serve_app.storage import Database, GlbStore, UserStore

    work = Path(tempfile.mkdtemp(prefix="bench_service_"))
    if args.video:
        video = Path(args.video).resolve()
    else:
        video = synthetic_video(work / "clip.mp4", seconds=25, width=640, height=360)
    photos = load_photos(args.images) if args.images else synthetic_photos(args.photos, 1024, 768)
    photos = photos[: args.photos]
    settings_dict = {
        "model": {"preset": args.preset, "checkpoint": str(Path(args.checkpoint).resolve()), "device": args.device},
        "storage": {"database_url": f"sqlite:///{work / 'bench.db'}", "storage_root": str(work / "store")},
        "frames": {"fps": args.fps},
        "proxy": {"host": "127.0.0.1", "port": 0, "spool_dir": str(work), "max_payload_bytes": 1024 * MiB},
    }
    settings = AppSettings.from_dict(settings_dict)
    db = Database(settings.storage.database_url)
    db.upgrade()
    user = UserStore(db, AuthSettings()).create(USER, PASSWORD, is_vip=True)

    print(f"work dir {work}; video {video} ({video.stat().st_size / MiB:.1f} MiB); {len(photos)} photos "
          f"({sum(map(len, photos)) / MiB:.1f} MiB); preset {args.preset}, device {args.device}")
    init_kwargs = {"address": "local", "include_dashboard": False, "log_to_driver": False}
    if args.num_cpus:
        init_kwargs["num_cpus"] = args.num_cpus
    ray.init(**init_kwargs)
    results: dict = {"preset": args.preset, "device": args.device}
    try:
        serve.start(proxy_location="Disabled")
        t0 = time.perf_counter()
        serve.run(build_app(settings_dict), name="bench", route_prefix=None, blocking=False)
        handle = serve.get_deployment_handle("TCPIngress", "bench")
        status = handle.status.remote().result()
        print(f"service up in {time.perf_counter() - t0:.1f} s: port {status['port']}, model {status['model']}")
        if not status["model"].get("loaded"):
            print("the service has no model; see the log above", file=sys.stderr)
            return 1
        port = status["port"]
        time.sleep(2)
        rss, pss, _ = memory_of(cluster_processes())
        results["idle_fresh"] = {"rss_mib": rss / MiB, "pss_mib": pss / MiB}
        print(f"idle memory of the fresh service (all Ray processes): RSS {rss / MiB:.0f} MiB, PSS {pss / MiB:.0f} MiB")

        t0 = time.perf_counter()
        pipeline = Pipeline(settings, stages=[ExportStage(settings, GlbStore(db, settings.storage.storage_root))])
        runner = pipeline.stage(InferenceStage).runner
        print(f"in-process pipeline loaded in {time.perf_counter() - t0:.1f} s")
        if runner.device.type == "cpu":
            import torch

            print(f"torch threads: service replica {status['model'].get('torch_threads')}, "
                  f"in-process {torch.get_num_threads()}")

        client = Client(port)
        assert client.login()[0] is True

        stages: dict[str, list[dict[str, float]]] = {}

        def service_stages(key: str) -> None:
            last = handle.recent_requests.remote().result()[-1]
            stages.setdefault(key, []).append(dict(last["timings"]))

        def service_images():
            name, data = client.images(photos)
            assert name.endswith(".glb"), data[:80]
            service_stages("service images")

        def service_video():
            name, data = client.video_file(video)
            assert name.endswith(".glb"), data[:80]
            service_stages("service video")

        def local_images():
            r = pipeline.run(Upload(Job(user.id, "bench"), images=tuple(photos)))
            stages.setdefault("in-process images", []).append(dict(r.timings))

        def local_video():
            r = pipeline.run(Upload.from_video_file(Job(user.id, "bench"), video))
            stages.setdefault("in-process video", []).append(dict(r.timings))

        speed = {}
        for label, via_service, in_process in (
            ("video", service_video, local_video),
            (f"{len(photos)} photos", service_images, local_images),
        ):
            via_service(), in_process()  # warm-up
            times_service, times_local = [], []
            for _ in range(args.repeats):
                t = time.perf_counter()
                via_service()
                times_service.append(time.perf_counter() - t)
                t = time.perf_counter()
                in_process()
                times_local.append(time.perf_counter() - t)
            s, l = statistics.median(times_service), statistics.median(times_local)
            overhead = s - l
            allowed = max(0.05 * l, 0.3)
            # Robust to a busy machine: what the service adds on top of its own stage compute
            # (client-measured total minus the stage times measured in the replicas).
            key = "service " + ("video" if label == "video" else "images")
            compute = [sum(run.get(stage.name, 0.0) for stage in STAGES) for run in stages[key][1:]]
            added = statistics.median(t - c for t, c in zip(times_service, compute))
            speed[label] = {
                "service_s": s,
                "in_process_s": l,
                "overhead_s": overhead,
                "overhead_pct": 100 * overhead / l if l else float("nan"),
                "allowed_s": allowed,
                "ok": overhead < allowed,
                "service_added_s": added,
                "added_ok": added < allowed,
                "service_runs_s": times_service,
                "in_process_runs_s": times_local,
            }
            print(
                f"{label:>10}: service {s:7.3f} s  in-process {l:7.3f} s  overhead {overhead:+.3f} s "
                f"({100 * overhead / l:+.1f} %)  goal < {allowed:.3f} s: {'OK' if overhead < allowed else 'MISSED'}"
            )
            print(
                f"{'':>10}  service time outside the four stages (TCP, Serve hops, transfers): {added:.3f} s "
                f"({100 * added / l:.1f} % of in-process)  goal < {allowed:.3f} s: {'OK' if added < allowed else 'MISSED'}"
            )
        results["speed"] = speed
        results["stages"] = {}
        print("per-stage medians (s), service stages as measured in the replicas and the TCP server:")
        for key, runs in stages.items():
            names = list(dict.fromkeys(k for run in runs for k in run))
            medians = {k: statistics.median(run.get(k, 0.0) for run in runs) for k in names}
            results["stages"][key] = medians
            print(f"    {key:>18}: " + "  ".join(f"{k} {v:.3f}" for k, v in medians.items()))
        client.close()

        time.sleep(12)  # replicas hand freed memory back at their next health check (every 10 s)
        rss, pss, by_name = memory_of(cluster_processes())
        results["idle"] = {"rss_mib": rss / MiB, "pss_mib": pss / MiB, "by_process_rss_mib": {k: v / MiB for k, v in by_name.items()}}
        print(f"idle memory of the service after the runs (all Ray processes): RSS {rss / MiB:.0f} MiB, PSS {pss / MiB:.0f} MiB")
        for name, value in sorted(by_name.items(), key=lambda kv: -kv[1]):
            print(f"    {value / MiB:7.0f} MiB  {name}")

        if args.upload_mb:
            size = args.upload_mb * MiB
            ingress_pid = status["pid"]
            import psutil

            # Log in first: a LOGIN verifies a scrypt hash (about 128 MiB for a moment), which
            # is not what this measures.
            upload = Client(port)
            assert upload.login()[0] is True
            time.sleep(1)
            before = psutil.Process(ingress_pid).memory_info().rss
            sampler = PeakSampler(ingress_pid)
            sampler.start()
            t = time.perf_counter()
            name, data = upload.video_stream(size, os.urandom(4 * MiB))
            seconds = time.perf_counter() - t
            peak = sampler.stop()
            upload.close()
            growth = peak - before
            results["upload"] = {
                "payload_mib": size / MiB,
                "ingress_rss_before_mib": before / MiB,
                "ingress_rss_peak_mib": peak / MiB,
                "growth_mib": growth / MiB,
                "seconds": seconds,
                "reply": name or data[:40].decode(errors="replace"),
            }
            print(
                f"upload of {size / MiB:.0f} MiB in {seconds:.1f} s (reply {name or data[:40]!r}): TCPIngress RSS "
                f"{before / MiB:.0f} -> peak {peak / MiB:.0f} MiB, growth {growth / MiB:.1f} MiB "
                f"({100 * growth / size:.1f} % of the payload)"
            )
    finally:
        serve.shutdown()
        ray.shutdown()
        db.dispose()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    speed_ok = all(v["ok"] or v["added_ok"] for v in results.get("speed", {}).values())
    return 0 if speed_ok else 2


if __name__ == "__main__":
    sys.exit(main())
