"""The phone app's viewer page (scripts/phone_viewer/viewer.html: Babylon.js) in headless Chromium:
how long a GLB takes to load and show, as the page itself measures it."""

from __future__ import annotations

import http.server
import queue
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BABYLON = REPO / ".venv" / "viewer-test" / "node_modules"


class _ViewerHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the viewer's files; the page's GET report?load=N&frame=M hands its times to `reports`."""

    reports: "queue.Queue[tuple[float, float]]"

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        if self.path.startswith("/report?"):
            times = dict(part.split("=", 1) for part in self.path.split("?", 1)[1].split("&"))
            self.reports.put((float(times["load"]), float(times["frame"])))
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args) -> None:  # no access log on the benchmark's output
        pass


class PhoneViewer:
    """The phone app's viewer page served from a temp folder; `load_ms(glb)` loads one GLB in Chromium.

    The times are the page's own, in real time (no virtual time budget), reported back over
    HTTP: from `SceneLoader.Append` to the GLB loaded into the scene, and to its first frame.
    """

    def __init__(self) -> None:
        import functools
        import shutil
        import tempfile
        import threading

        self.browser = shutil.which("chromium")
        files = [BABYLON / "babylonjs" / "babylon.js", BABYLON / "babylonjs-loaders" / "babylonjs.loaders.min.js"]
        self.available = self.browser is not None and all(path.is_file() for path in files)
        if not self.available:
            return
        self.root = Path(tempfile.mkdtemp(prefix="phone_viewer_"))
        for path in [*files, REPO / "scripts" / "phone_viewer" / "viewer.html"]:
            shutil.copy(path, self.root / path.name)
        self.reports: queue.Queue[tuple[float, float]] = queue.Queue()
        handler_class = type("Handler", (_ViewerHandler,), {"reports": self.reports})
        handler = functools.partial(handler_class, directory=str(self.root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def load_ms(self, glb: bytes, name: str, timeout_s: float = 300) -> tuple[float, float] | None:
        """(ms to loaded, ms to first frame), or None when the page never showed it."""
        import subprocess

        (self.root / f"{name}.glb").write_bytes(glb)
        url = f"http://127.0.0.1:{self.server.server_address[1]}/viewer.html?glb={name}.glb"
        browser = subprocess.Popen(
            [
                self.browser, "--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", f"--user-data-dir={self.root / 'profile'}", "--window-size=640,480",
                "--remote-debugging-port=0", url,
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            return self.reports.get(timeout=timeout_s)
        except queue.Empty:
            return None
        finally:
            browser.kill()
            browser.wait()
