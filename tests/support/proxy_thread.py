"""The real TCP proxy on its own event loop in a thread, in front of the in-memory backend (proxy_fakes)."""

from __future__ import annotations

import asyncio
import threading

import proxy_fakes as fakes

from tcp_proxy.server import start_server
from tcp_proxy.settings import ProxySettings


class ServerThread:
    """The proxy on its own event loop in a thread; `records` holds every answered request."""

    def __init__(self, spool_dir: str):
        self.backend = fakes.FakeBackend()
        self.records = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        settings = ProxySettings(host="127.0.0.1", port=0, spool_dir=spool_dir)
        start = start_server(settings, self.backend, max_images=5, port=0, on_request=self.records.append)
        self.server = asyncio.run_coroutine_threadsafe(start, self.loop).result(10)
        self.port = self.server.port

    def stop(self):
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
