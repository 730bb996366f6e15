"""How soon a result's page shows its cloud: the share page (`/g/<hash>`) in headless Chromium, real time.

The service's own share routes (`SharePages`: page, GLB, three.js, and the
app's viewer module through `AppFiles`) are served by uvicorn from a fresh
SQLite database and storage root holding two GLBs made by `export_glb` with
the default options: the default 800,000-point budget, and the same export
capped at 1,000 points (the baseline: what the page costs with next to no
points). Each load starts a
fresh browser profile, so three.js and the GLB come over HTTP every time, as
for someone opening a share link; the app page, which has three.js loaded
already when a job ends, only pays for the GLB.

The page's own clock gives the times, from the navigation's start: the
viewer's first `render()` of the cloud, the frame after it (two animation
frames later: on the screen) and the GLB's download. A few lines appended to
the page (only here) send them back over HTTP.
"""

from __future__ import annotations

import json
import queue
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

TINY_POINTS = 1000  # the baseline: the same export with this point cap
REPORT = """<script type="module">
const report = () => {
  const state = document.body.dataset.state;
  if (state === "loading") return setTimeout(report, 10);
  requestAnimationFrame(() => requestAnimationFrame(() => {
    const glb = performance.getEntriesByType("resource").find((entry) => entry.name.endsWith(".glb"));
    const times = { state, drawn: Number(document.body.dataset.drawnMs), painted: performance.now(),
                    glb: glb ? glb.responseEnd : null, points: Number(document.body.dataset.points) };
    fetch("/report?" + new URLSearchParams({ times: JSON.stringify(times) }));
  }));
};
report();
</script>
"""


@dataclass(frozen=True)
class PageLoad:
    """One load of the share page, in ms from the start of the navigation."""

    drawn_ms: float  # the viewer's first render() of the cloud
    painted_ms: float  # two animation frames later
    glb_ms: float  # the GLB's last byte received
    points: int


def default_glb(frames: int, max_points: int | None = None, seed: int = 0) -> tuple[bytes, int]:
    """(GLB, points) of `frames` synthetic frames exported with the service's default options
    (and this point cap, when given)."""
    from devkit.export_bench import synthetic_predictions
    from serve_app.export import ExportOptions, export_glb

    options = ExportOptions() if max_points is None else ExportOptions(max_points=max_points)
    made = export_glb(synthetic_predictions(frames, seed=seed), options)
    return made.glb, made.point_count


class SharePageServer:
    """The share routes over uvicorn on a free loopback port, over a fresh database and storage root."""

    def __init__(self, work: Path) -> None:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import HTMLResponse, Response
        from starlette.routing import Route

        from devkit.ports import free_port
        from serve_app.config import AppSettings
        from serve_app.http.app_files import AppFiles
        from serve_app.http.share_pages import SharePages
        from serve_app.storage import Database, GlbStore
        from serve_app.storage.models import User

        database_url = f"sqlite:///{work / 'bench.db'}"
        db = Database(database_url)
        db.upgrade()
        with db.session() as session:
            session.add(User(id=1, username="bench", password_hash="x"))
        self.store = GlbStore(db, work / "store")
        storage = {"database_url": database_url, "storage_root": str(work / "store")}
        self.pages = SharePages(AppSettings.from_dict({"storage": storage}))
        self.reports: queue.Queue[dict] = queue.Queue()
        app_files = AppFiles()

        def share(request: Request) -> Response:
            name = request.path_params["name"]
            if name.endswith(".glb"):
                return self.pages.glb(name[: -len(".glb")], request.headers)
            page = self.pages.page(name)
            html = page.body.decode().replace("</body>", REPORT + "</body>")
            return HTMLResponse(html, headers={"Cache-Control": page.headers["cache-control"]})

        def report(request: Request) -> Response:
            self.reports.put(json.loads(request.query_params["times"]))
            return Response(status_code=204)

        routes = [
            Route("/g/{name}", share),
            Route("/viewer/{path:path}", lambda request: self.pages.viewer_file(request.path_params["path"])),
            Route("/app/{path:path}", lambda request: app_files.file(request.path_params["path"], request.headers)),
            Route("/report", report),
        ]
        self.port = free_port()
        config = uvicorn.Config(Starlette(routes=routes), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        threading.Thread(target=self._server.run, daemon=True).start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the page server did not start")
            time.sleep(0.05)

    def add(self, glb: bytes, name: str) -> str:
        """Store a GLB; its share page's URL."""
        hashed = self.store.save(glb, 1, name).hashed_name
        return f"http://127.0.0.1:{self.port}/g/{hashed}"

    def close(self) -> None:
        self._server.should_exit = True
        self.pages.close()
        self.store.database.dispose()


def load_page(server: SharePageServer, url: str, profile: Path, size: tuple[int, int], timeout_s: float) -> PageLoad:
    """Open `url` in a new headless Chromium with an empty profile; the times the page reports."""
    browser = shutil.which("chromium")
    if browser is None:
        raise RuntimeError("Debian's chromium is not installed")
    process = subprocess.Popen(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
            "--enable-unsafe-swiftshader", "--disable-background-networking", "--disable-component-update",
            "--no-first-run", f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
            "--remote-debugging-port=0", url,
        ],  # fmt: skip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        times = server.reports.get(timeout=timeout_s)
    finally:
        process.kill()
        process.wait()
    if times["state"] != "shown":
        raise RuntimeError(f"the page did not show the cloud: {times}")
    return PageLoad(times["drawn"], times["painted"], times["glb"] or float("nan"), int(times["points"]))


def run(frames: int, repeat: int, size: tuple[int, int], timeout_s: float = 60.0) -> dict[str, list[PageLoad]]:
    """The loads of the default-budget GLB and of the tiny baseline, alternately, `repeat` times each."""
    work = Path(tempfile.mkdtemp(prefix="bench_page_"))
    server = SharePageServer(work)
    try:
        default, default_points = default_glb(frames)
        print(f"default export of {frames} frames: {default_points:,} points, {len(default) / 1e6:.1f} MB")
        tiny = default_glb(frames, max_points=TINY_POINTS)[0]
        urls = {"tiny": server.add(tiny, "tiny"), "default": server.add(default, "default")}
        loads: dict[str, list[PageLoad]] = {name: [] for name in urls}
        for round_ in range(repeat):
            for name, url in urls.items():
                loads[name].append(load_page(server, url, work / f"profile-{name}-{round_}", size, timeout_s))
        return loads
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)


def report(loads: dict[str, list[PageLoad]], goal_ms: float) -> str:
    """The table of medians, the ratio to the baseline and the goal."""
    lines = ["| GLB | points | GLB received ms | cloud drawn ms | on screen ms |", "| --- | --- | --- | --- | --- |"]
    median = {}
    for name, runs in loads.items():
        median[name] = {field: statistics.median(getattr(run, field) for run in runs) for field in
                        ("glb_ms", "drawn_ms", "painted_ms")}  # fmt: skip
        row = median[name]
        lines.append(
            f"| {name} | {runs[0].points:,} | {row['glb_ms']:.0f} | {row['drawn_ms']:.0f} | {row['painted_ms']:.0f} |"
        )
    shown, base = median["default"]["painted_ms"], median["tiny"]["painted_ms"]
    lines.append(
        f"default / tiny (on screen): {shown / base:.2f}x; the points add {shown - base:.0f} ms;"
        f" goal {goal_ms:.0f} ms: {'met' if shown <= goal_ms else 'NOT met'} ({len(loads['default'])} runs, median)"
    )
    return "\n".join(lines)
