"""The asyncio TCP server: listening, connection limits, PROXY headers and drain.

Each accepted connection is served by a `connection.Connection` (reading,
answering, timeouts, admission and spooling are described there). Decisions:

* Over `max_connections`, or over `max_connections_per_address` from its
  address, a connection is still accepted: its command byte is read and
  answered `ERROR_BUSY` in that command's error shape (LOGIN:
  `[false,false]`), then it is closed. Beyond as many again (at least 16),
  new connections are closed at once.
* Behind TCP load balancers (`proxy_protocol_from`), a connection from one
  of them must start with a PROXY header; the client address it gives is the
  connection's address for sessions, throttling and caps. A header with no
  client address is refused, and a LOCAL one (the balancer's health check)
  is closed without a reply.
* Caps, the login throttle and sessions count a client by its key
  (`addresses.client_key`: IPv4 address, or IPv6 network of
  `ipv6_prefix_length` bits).
* Uploads are spooled in this server's own folder (`spool_dir`), made when
  it listens and removed when it closes; folders of processes killed
  meanwhile are swept when a server starts.
* Shutdown drops no one (`drain`): the listener binds with SO_REUSEPORT and
  keeps accepting until a successor listens on the same port (or
  `handover_s` passes), then stops accepting; requests in flight, and
  connections that send their frame within a moment, are answered, for up
  to `drain_timeout_s`; idle connections are closed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from . import codec
from .admission import Admission
from .backend import Backend
from .connection import Connection, RequestRecord
from .connection_io import LINGER_S, linger
from .limits import Limit
from .listeners import listening_sockets
from .proxy_protocol import ProxyHeaderError, is_trusted, parse_trusted, read_proxy_header
from .addresses import client_key, normalize_address
from .sessions import MemorySessionStore, Sessions, SessionStore
from .settings import ProxySettings
from .spool_dir import make_spool_dir, sweep_spool_dirs

__all__ = ["ProxyServer", "RequestRecord", "loggable", "start_server"]

log = logging.getLogger("tcp_proxy")

MIN_OVERFLOW = 16  # over-limit connections answered ERROR_BUSY at a time, at least
OVERFLOW_HEADER_WAIT_S = 5.0  # wait this long for the command byte of an over-limit connection
DRAIN_IDLE_S = 1.0  # while draining, a connection with no frame under way this long is closed
DRAIN_POLL_S = 0.1
PROXY_HEADER_READ = 256  # a PROXY header is at most 107 bytes (v1) or 16 + 216 (v2)
LOGGED_TEXT_CHARS = 64  # user-controlled text in a log line is cut to this many characters


def _always_loaded() -> bool:
    return True


def loggable(text: str | None) -> str:
    """User-controlled text for a log line: escaped (no newline or control character gets through),
    non-ASCII as escapes, at most LOGGED_TEXT_CHARS characters; "-" for none."""
    if not text:
        return "-"
    cut = text[:LOGGED_TEXT_CHARS]
    return ascii(cut)[1:-1] + ("..." if len(text) > LOGGED_TEXT_CHARS else "")


class ProxyServer:
    """The listening server, its sessions, limits and counters."""

    def __init__(
        self,
        settings: ProxySettings,
        backend: Backend,
        *,
        max_images: int,
        on_request: Callable[[RequestRecord], Any] | None = None,
        sessions: SessionStore | None = None,
        model_loaded: Callable[[], bool] | None = None,
    ):
        """sessions: where address bindings live (default: this process, ending with it); model_loaded:
        false once the service knows its model did not load, so IMAGE/VIDEO are refused at the header
        (default: always true; the backend then answers ERROR_MODEL_NOT_LOADED itself)."""
        self.settings = settings
        self.backend = backend
        self.max_images = max_images
        self.on_request = on_request
        self.model_loaded: Callable[[], bool] = model_loaded or _always_loaded
        store = sessions if sessions is not None else MemorySessionStore(settings.session_ttl_s)
        self.sessions = Sessions(
            store, bind_to_address=settings.bind_sessions_to_ip, ipv6_prefix_length=settings.ipv6_prefix_length
        )
        self.connections = Limit(settings.max_connections)
        self.overflow = Limit(max(settings.max_connections, MIN_OVERFLOW))  # answered ERROR_BUSY
        self.downloads = Limit(settings.max_downloads)  # GET_GLB replies being sent
        self._downloads_per_address: Counter[str] = Counter()  # of those, per client key
        self.admission = Admission(
            max_pending=settings.max_pending_reconstructions,
            max_per_user=settings.max_pending_per_user,
            max_wait_s=settings.max_wait_s,
            max_upload_bytes=settings.max_upload_bytes_in_flight,
        )
        self.requests_total = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: dict[asyncio.Task, asyncio.StreamWriter] = {}
        self._connections: set[Connection] = set()
        self._per_address: Counter[str] = Counter()  # open connections per client key (addresses.client_key)
        self._balancers = parse_trusted(settings.proxy_protocol_from)  # they send a PROXY header first
        self.spool_dir: Path | None = None  # this server's upload folder, made when it listens

    @property
    def active_connections(self) -> int:
        return self.connections.in_use

    @property
    def pending_reconstructions(self) -> int:
        return self.admission.pending

    @property
    def serving(self) -> bool:
        """Whether the listening socket accepts connections."""
        return self._server is not None and self._server.is_serving()

    def acquire_download(self, address: str) -> bool:
        """Take a GET_GLB reply slot for `address`: False at `max_downloads`, or at
        `max_downloads_per_address` to its client key (one client cannot take every slot)."""
        client = client_key(address, self.settings.ipv6_prefix_length)
        if self._downloads_per_address[client] >= self.settings.max_downloads_per_address:
            return False
        if not self.downloads.try_acquire():
            return False
        self._downloads_per_address[client] += 1
        return True

    def release_download(self, address: str) -> None:
        """Give back a slot `acquire_download` gave `address`."""
        client = client_key(address, self.settings.ipv6_prefix_length)
        self.downloads.release()
        self._downloads_per_address[client] -= 1
        if self._downloads_per_address[client] <= 0:
            del self._downloads_per_address[client]

    def stats(self) -> dict[str, float]:
        """Gauges for metrics."""
        return {
            "active_connections": self.active_connections,
            "pending_reconstructions": self.pending_reconstructions,
            "estimated_wait_s": self.admission.estimated_wait_s,
            "requests_total": self.requests_total,
        }

    async def _listen(self, host: str, port: int, *, share_port: bool = True) -> None:
        sweep_spool_dirs(self.settings.spool_dir)  # uploads of processes killed mid-request
        self.spool_dir = make_spool_dir(self.settings.spool_dir)
        tls = _tls_context(self.settings)
        self._server = await asyncio.start_server(
            self._on_connect,
            host,
            port,
            reuse_address=True,
            reuse_port=share_port and hasattr(socket, "SO_REUSEPORT"),
            **({"ssl": tls, "ssl_handshake_timeout": self.settings.first_byte_timeout_s} if tls else {}),
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def drain(self, *, handover_s: float, timeout_s: float) -> None:
        """Shut down without dropping a client: hand the port over, finish what is under way, close."""
        loop = asyncio.get_running_loop()
        if self._server is not None:
            own = len(self._server.sockets)
            handover_until = loop.time() + handover_s
            while loop.time() < handover_until and (listening_sockets(self.port) or 0) <= own:
                await asyncio.sleep(DRAIN_POLL_S)  # still the port's only listener: keep accepting
            self._server.close()
        log.info("draining: %d connections open", len(self._connections))
        deadline = loop.time() + timeout_s
        while self._connections and loop.time() < deadline:
            for connection in list(self._connections):
                if connection.idle_for() > DRAIN_IDLE_S:
                    connection.writer.close()
            await asyncio.sleep(DRAIN_POLL_S)
        if self._connections:
            log.warning("drain deadline passed with %d connections busy", len(self._connections))
        await self.close()

    async def close(self) -> None:
        """Stop listening and end every connection (running requests are cancelled)."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task, writer in list(self._tasks.items()):
            task.cancel()
            writer.transport.abort()  # also ends a handler whose cancellation got lost
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        if self.spool_dir is not None:
            shutil.rmtree(self.spool_dir, ignore_errors=True)

    def record(self, record: RequestRecord) -> None:
        self.requests_total += 1
        timings = " ".join(f"{k}={v:.3f}" for k, v in record.timings.items())
        log.info(
            "request peer=%s user=%s command=%s outcome=%s bytes_in=%d bytes_out=%d seconds=%.3f %s",
            *(record.peer, loggable(record.user), record.command, record.outcome),
            *(record.bytes_in, record.bytes_out, record.seconds, timings),
        )
        if self.on_request is not None:
            try:
                self.on_request(record)
            except Exception:
                log.exception("on_request hook failed")

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks[task] = writer
        peer, first_bytes = _peer(writer), b""
        try:
            if is_trusted(peer, self._balancers):
                peer, first_bytes = await self._behind_balancer(reader, peer)
                if not peer:
                    return
            client = client_key(peer, self.settings.ipv6_prefix_length)
            if self._per_address[client] < self.settings.max_connections_per_address and self.connections.try_acquire():
                connection = Connection(self, reader, writer, peer, first_bytes)
                self._connections.add(connection)
                self._per_address[client] += 1
                try:
                    await connection.run()
                finally:
                    self._per_address[client] -= 1
                    if self._per_address[client] <= 0:
                        del self._per_address[client]
                    self._connections.discard(connection)
                    self.connections.release()
            elif self.overflow.try_acquire():
                try:
                    await self._refuse(reader, writer, peer, first_bytes)
                finally:
                    self.overflow.release()
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("connection handler failed")
        finally:
            await _close(writer)
            if task is not None:
                self._tasks.pop(task, None)

    async def _behind_balancer(self, reader: asyncio.StreamReader, balancer: str) -> tuple[str, bytes]:
        """(the client's address from the PROXY header, bytes read after it); ("", b"") to close."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.first_byte_timeout_s
        data = b""
        try:
            while (header := read_proxy_header(data)) is None:
                more = await asyncio.wait_for(reader.read(PROXY_HEADER_READ), max(0.0, deadline - loop.time()))
                if not more:
                    return "", b""
                data += more
        except (ProxyHeaderError, asyncio.TimeoutError, OSError) as exc:
            log.info("connection from balancer %s closed: %s", balancer, exc or "no PROXY header in time")
            return "", b""
        if header.source is None:  # LOCAL: the balancer's health check, closed without a reply
            log.debug("health check from balancer %s", balancer)
            return "", b""
        return normalize_address(header.source), data[header.consumed :]

    async def _refuse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str, first_bytes: bytes
    ) -> None:
        """Answer ERROR_BUSY to a connection over the limit (`first_bytes`: read already, after a PROXY header)."""
        started = time.monotonic()
        try:
            first = first_bytes[:1] or await asyncio.wait_for(
                reader.read(1), min(self.settings.read_timeout_s, OVERFLOW_HEADER_WAIT_S)
            )
        except (asyncio.TimeoutError, OSError):
            return
        if not first:
            return
        reply = codec.encode_error(first[0], codec.ERROR_BUSY)
        writer.write(reply)
        await linger(reader, writer, min(LINGER_S, self.settings.read_timeout_s))
        seconds = time.monotonic() - started
        name = codec.command_name(first[0])
        self.record(RequestRecord(name, None, codec.ERROR_BUSY, 1, len(reply), seconds, peer=peer))


async def start_server(
    settings: ProxySettings,
    backend: Backend,
    *,
    max_images: int,
    host: str | None = None,
    port: int | None = None,
    on_request: Callable[[RequestRecord], Any] | None = None,
    sessions: SessionStore | None = None,
    share_port: bool = True,
    model_loaded: Callable[[], bool] | None = None,
) -> ProxyServer:
    """Listen on `host:port` (default: the settings'; port 0 picks a free one) on the running loop.

    share_port: bind with SO_REUSEPORT, next to other listeners that do (a replica and its successor
    during a redeploy); without it a port already listened on raises OSError (EADDRINUSE).
    """
    server = ProxyServer(
        settings, backend, max_images=max_images, on_request=on_request, sessions=sessions, model_loaded=model_loaded
    )
    host, port = settings.host if host is None else host, settings.port if port is None else port
    try:
        await server._listen(host, port, share_port=share_port)
    except OSError:
        await server.close()  # its spool folder goes with it
        raise
    log.info("TCP proxy listening on %s:%d", host, server.port)
    return server


def _tls_context(settings: ProxySettings) -> ssl.SSLContext | None:
    """The listener's TLS context when a certificate is configured (clients that can use TLS; the
    shipped Android app speaks plain TCP), else None."""
    if not settings.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return normalize_address(str(peer[0])) if peer else ""


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), LINGER_S)
    except Exception:
        writer.transport.abort()

