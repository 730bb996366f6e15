"""Debian's Chromium, headless, driven over the DevTools protocol: load a page, click, drag, take screenshots.

For tests that use a page's controls (`browser.render` only loads and dumps).
WebGL runs on SwiftShader, as in `browser`. The browser prints its DevTools
address on stderr; the session talks to one tab over that WebSocket.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

import browser

SETTLED = "new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve(true))))"


class BrowserSession:
    """One headless Chromium with one tab of `size` CSS pixels (device scale 1)."""

    def __init__(self, profile: Path, size: tuple[int, int]) -> None:
        sync_client = pytest.importorskip("websockets.sync.client", reason="websockets is missing")
        self._process = subprocess.Popen(
            [
                browser.chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", f"--user-data-dir={profile}", "--remote-debugging-port=0",
                f"--window-size={size[0]},{size[1]}", "about:blank",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        address = None
        for line in self._process.stderr:  # blocks until the browser says where it listens
            if line.startswith("DevTools listening on "):
                address = line.split(" on ", 1)[1].strip()
                break
        assert address, "chromium did not start its DevTools server"
        threading.Thread(target=self._process.stderr.read, daemon=True).start()  # keep its stderr flowing
        self._socket = sync_client.connect(address, max_size=None, open_timeout=60).__enter__()
        self._ids = itertools.count(1)
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1, mobile=False)
        self.call("Page.enable")

    def call(self, method: str, **params) -> dict:
        """Send one command (to the tab once attached) and return its result; events in between are skipped."""
        message_id = next(self._ids)
        message = {"id": message_id, "method": method, "params": params}
        if getattr(self, "_session", None) and not method.startswith("Target."):
            message["sessionId"] = self._session
        self._socket.send(json.dumps(message))
        while True:
            reply = json.loads(self._socket.recv(timeout=120))
            if reply.get("id") == message_id:
                assert "error" not in reply, (method, reply["error"])
                return reply.get("result", {})

    def _wait_for_event(self, method: str) -> None:
        while json.loads(self._socket.recv(timeout=120)).get("method") != method:
            pass

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self._wait_for_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_until(self, condition: str, timeout_ms: int = 90000):
        """Evaluate `condition` in the page until it is truthy (the page polls); its value."""
        return self.evaluate(
            f"""new Promise((resolve, reject) => {{
                const end = Date.now() + {timeout_ms};
                const check = () => {{
                    const value = ({condition});
                    if (value) resolve(value);
                    else if (Date.now() > end) reject(new Error("timed out waiting for: " + {json.dumps(condition)}));
                    else setTimeout(check, 50);
                }};
                check();
            }})"""
        )

    def screenshot(self) -> np.ndarray:
        """[H, W, 3] int RGB of the tab after two more frames were drawn."""
        from PIL import Image

        self.evaluate(SETTLED)
        png = base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element."""
        box = self.evaluate(
            f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        self.drag(box, box)

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
        """Press the left button at `start`, move to `end`, release."""
        self._mouse("mousePressed", start, buttons=1)
        for step in range(1, steps + 1):
            point = [start[i] + (end[i] - start[i]) * step / steps for i in (0, 1)]
            self._mouse("mouseMoved", point, buttons=1)
        self._mouse("mouseReleased", end, buttons=0)

    def _mouse(self, kind: str, point, buttons: int) -> None:
        self.call(
            "Input.dispatchMouseEvent", type=kind, x=point[0], y=point[1], button="left", buttons=buttons, clickCount=1
        )

    def close(self) -> None:
        try:
            self._socket.close()
        finally:
            self._process.kill()
            self._process.wait(timeout=30)
