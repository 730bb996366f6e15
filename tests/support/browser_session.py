"""Debian's Chromium, headless, driven over the DevTools protocol: load a page, fill and click, choose files,
drag, take screenshots; a fresh browser context (no cookies) on request.

For tests that use a page's controls (`browser.render` only loads and dumps).
WebGL runs on SwiftShader, as in `browser`. The browser prints its DevTools
address on stderr; the session talks to one tab over that WebSocket.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import math
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
        self._size = size
        self._new_tab()

    def _new_tab(self, **target_options) -> None:
        """Open a blank tab (in the browser context `target_options` name, if any) and talk to it from now on."""
        self._session = None
        target = self.call("Target.createTarget", url="about:blank", **target_options)["targetId"]
        self._session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        width, height = self._size
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.call("Page.enable")

    def use_fresh_context(self) -> None:
        """Move to a new tab in a new browser context: none of the cookies or storage of the pages before."""
        self._new_tab(browserContextId=self.call("Target.createBrowserContext")["browserContextId"])

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

    def fill(self, selector: str, value: str) -> None:
        """Set a form field's value as typing would: its `input` and `change` events fire."""
        self.evaluate(
            f"(() => {{ const field = document.querySelector({json.dumps(selector)}); field.value = {json.dumps(value)};"
            " for (const kind of ['input', 'change']) field.dispatchEvent(new Event(kind, { bubbles: true })); })()"
        )

    def choose_files(self, selector: str, paths: list[Path]) -> None:
        """Put files into a file input, as the file chooser would (its `change` event fires)."""
        root = self.call("DOM.getDocument", depth=0)["root"]["nodeId"]
        node = self.call("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        assert node, f"no {selector} in the page"
        self.call("DOM.setFileInputFiles", files=[str(path) for path in paths], nodeId=node)

    def box(self, selector: str) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) in CSS pixels of the element on the screen (scrolled into view), rounded inwards."""
        left, top, right, bottom = self.evaluate(
            f"(() => {{ const element = document.querySelector({json.dumps(selector)});"
            " element.scrollIntoView({ block: 'nearest' }); const r = element.getBoundingClientRect();"
            " return [r.left, r.top, r.right, r.bottom]; })()"
        )
        return math.ceil(left), math.ceil(top), math.floor(right), math.floor(bottom)

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (scrolled into view first, if need be)."""
        left, top, right, bottom = self.box(selector)
        middle = ((left + right) / 2, (top + bottom) / 2)
        self.drag(middle, middle)

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
