"""The asyncio TCP server: a thin loop over `codec.RequestReader`.

Each connection is one task that reads bytes, feeds the codec and answers
every request before it reads on, so replies leave in request order and no
timeout runs while a request is computed. Decisions:

* Timeouts: `read_timeout_s` is the longest silence inside a frame (the
  client gets `ERROR_READ_TIMEOUT` in the command's error shape, then the
  connection closes); `idle_timeout_s` is the longest silence between frames
  (closed without a reply). Neither runs while the backend computes.
* An unknown command is answered `UNKNOWN_COMMAND`; its declared payload is
  skipped and the connection stays open (closed if the length is over the
  limit). Refused IMAGE/VIDEO requests (not logged in, not VIP, busy, bad
  framing) are answered as soon as that is known and their payload skipped.
* Over `max_connections`, or over `max_connections_per_address` from its
  address, a connection is still accepted: its command byte is read and
  answered `ERROR_BUSY` in that command's error shape (LOGIN:
  `[false,false]`), then it is closed. Beyond as many again (at least 16),
  new connections are closed at once.
* Behind TCP load balancers (`proxy_protocol_from`), a connection from one
  of them must start with a PROXY header; the client address it gives is the
  connection's address for sessions, throttling and caps.
* Read deadlines (`deadlines.ReadDeadlines`): a first byte soon after the
  connect, small frames complete within a bound, uploads at a minimum
  average rate; a client that misses one gets `ERROR_READ_TIMEOUT` in its
  command's shape (none before its first byte) and the connection closes.
* Admission (`admission.Admission`): an IMAGE/VIDEO request takes a slot at
  its header, before its upload, and is refused `ERROR_BUSY` there (payload
  skipped) when the estimated wait is over `max_wait_s`, its user already has
  `max_pending_per_user` pending, or `max_pending_reconstructions` are
  pending in all. The slot is given back when the request ends, whatever
  happens.
* IMAGE and VIDEO uploads are streamed to a spool file (`spool.Spool`, never
  held in memory) in this server's own folder (`spool_dir`); the backend gets
  the video's path, or the photos as views of the mapped file. The file is
  deleted when the request ends, whatever happens; folders of processes
  killed meanwhile are swept when a server starts.
* A client that disconnects during a reconstruction does not cancel it: the
  GLB is stored with its row and stays reachable by its hash, so nothing is
  orphaned; the reply is simply not delivered.
* Before closing after an error reply, the server shuts its side and briefly
  drains the client's unread bytes, so the reply is not lost to a reset.
* Shutdown drops no one (`drain`): the listener binds with SO_REUSEPORT and
  keeps accepting until a successor listens on the same port (or
  `handover_s` passes), then stops accepting; requests in flight, and
  connections that send their frame within a moment, are answered, for up
  to `drain_timeout_s`; idle connections are closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import ssl
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from . import codec
from .backend import Backend, Download, User
from .admission import Admission, Slot
from .codec import IMAGE, VIDEO
from .errors import NotLoggedInError, ResultTooLargeError, ServiceError, VipRequiredError
from .deadlines import ReadDeadlines
from .limits import Limit
from .listeners import listening_sockets
from .proxy_protocol import ProxyHeaderError, is_trusted, parse_trusted, read_proxy_header
from .spool import Spool
from .spool_dir import make_spool_dir, sweep_spool_dirs
from .sessions import MemorySessionStore, Sessions, SessionStore, normalize_address
from .settings import ProxySettings

log = logging.getLogger("tcp_proxy")

READ_SIZE = 256 * 1024
SEND_CHUNK = 256 * 1024
LINGER_S = 2.0  # at most this long draining a client before closing after an error
MIN_OVERFLOW = 16  # over-limit connections answered ERROR_BUSY at a time, at least
OVERFLOW_HEADER_WAIT_S = 5.0  # wait this long for the command byte of an over-limit connection
DRAIN_IDLE_S = 1.0  # while draining, a connection with no frame under way this long is closed
DRAIN_POLL_S = 0.1
PROXY_HEADER_READ = 256  # a PROXY header is at most 107 bytes (v1) or 16 + 216 (v2)

ERROR_NOT_LOGGED_IN = NotLoggedInError.code
ERROR_VIP_REQUIRED = VipRequiredError.code
OUTCOME_OK = "OK"
OUTCOME_LOGIN_FAILED = "LOGIN_FAILED"
OUTCOME_DISCONNECTED = "DISCONNECTED"  # computed, but the reply could not be delivered


@dataclass(frozen=True)
class RequestRecord:
    """One answered request, handed to `on_request` and logged."""

    command: str  # LOGIN, IMAGE, VIDEO, GET_GLB or UNKNOWN
    user: str | None
    outcome: str  # OK, LOGIN_FAILED, DISCONNECTED or the ERROR_* code sent
    bytes_in: int
    bytes_out: int
    seconds: float
    timings: Mapping[str, float] = field(default_factory=dict)
    peer: str = ""


class _ClientGone(Exception):
    """The client cannot be written to any more."""


LOGGED_TEXT_CHARS = 64  # user-controlled text in a log line is cut to this many characters


def loggable(text: str | None) -> str:
    """User-controlled text for a log line: escaped (no newline or control character gets through),
    non-ASCII as escapes, at most LOGGED_TEXT_CHARS characters; "-" for none."""
    if not text:
        return "-"
    cut = text[:LOGGED_TEXT_CHARS]
    return ascii(cut)[1:-1] + ("..." if len(text) > LOGGED_TEXT_CHARS else "")


def _wire_code(exc: ServiceError) -> str:
    code = getattr(exc, "code", "")
    ok = isinstance(code, str) and code.startswith("ERROR_") and code.isascii() and len(code) <= 64
    return code if ok else codec.ERROR_INTERNAL


def _timings(value: Any) -> dict[str, float]:
    """Backend stage timings as {name: seconds}; anything unusable is dropped."""
    out: dict[str, float] = {}
    if isinstance(value, Mapping):
        for key, seconds in value.items():
            with suppress(TypeError, ValueError):
                out[str(key)] = float(seconds)
    return out


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
    ):
        """sessions: where address bindings live (default: this process, ending with it)."""
        self.settings = settings
        self.backend = backend
        self.max_images = max_images
        self.on_request = on_request
        store = sessions if sessions is not None else MemorySessionStore(settings.session_ttl_s)
        self.sessions = Sessions(store, bind_to_address=settings.bind_sessions_to_ip)
        self.connections = Limit(settings.max_connections)
        self.overflow = Limit(max(settings.max_connections, MIN_OVERFLOW))  # answered ERROR_BUSY
        self.downloads = Limit(settings.max_downloads)  # GET_GLB replies being sent
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
        self._connections: set[_Connection] = set()
        self._per_address: Counter[str] = Counter()  # open connections per client address
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

    def stats(self) -> dict[str, float]:
        """Gauges for metrics."""
        return {
            "active_connections": self.active_connections,
            "pending_reconstructions": self.pending_reconstructions,
            "estimated_wait_s": self.admission.estimated_wait_s,
            "requests_total": self.requests_total,
        }

    async def _listen(self, host: str, port: int) -> None:
        sweep_spool_dirs(self.settings.spool_dir)  # uploads of processes killed mid-request
        self.spool_dir = make_spool_dir(self.settings.spool_dir)
        tls = _tls_context(self.settings)
        self._server = await asyncio.start_server(
            self._on_connect,
            host,
            port,
            reuse_address=True,
            reuse_port=hasattr(socket, "SO_REUSEPORT"),
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
            if self._per_address[peer] < self.settings.max_connections_per_address and self.connections.try_acquire():
                connection = _Connection(self, reader, writer, peer, first_bytes)
                self._connections.add(connection)
                self._per_address[peer] += 1
                try:
                    await connection.run()
                finally:
                    self._per_address[peer] -= 1
                    if self._per_address[peer] <= 0:
                        del self._per_address[peer]
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
        source = normalize_address(header.source) if header.source else balancer  # LOCAL: its own check
        return source, data[header.consumed :]

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
        await _linger(reader, writer, min(LINGER_S, self.settings.read_timeout_s))
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
) -> ProxyServer:
    """Listen on `host:port` (default: the settings'; port 0 picks a free one) on the running loop."""
    server = ProxyServer(settings, backend, max_images=max_images, on_request=on_request, sessions=sessions)
    await server._listen(settings.host if host is None else host, settings.port if port is None else port)
    log.info("TCP proxy listening on %s:%d", settings.host if host is None else host, server.port)
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


async def _linger(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    seconds: float,
    until_bytes: int | None = None,
    silence_s: float | None = None,
) -> None:
    """Flush, shut our side, and drop what the client still sends: for `seconds` at most, until its
    end of stream, until `until_bytes` have been dropped, or until it is silent for `silence_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    dropped = 0
    with suppress(Exception):
        await asyncio.wait_for(writer.drain(), seconds)
        if writer.can_write_eof():
            writer.write_eof()
        while (left := deadline - loop.time()) > 0 and (until_bytes is None or dropped < until_bytes):
            data = await asyncio.wait_for(reader.read(READ_SIZE), min(left, silence_s or left))
            if not data:
                break
            dropped += len(data)


@dataclass
class _Request:
    command: int
    length: int
    started: float
    user: User | None = None  # who an IMAGE/VIDEO request runs as
    username: str | None = None  # for the log line
    stages: dict[str, float] = field(default_factory=dict)  # measured here, in order
    backend_timings: dict[str, float] = field(default_factory=dict)  # reported by the backend

    def mark(self, stage: str) -> None:
        """Record the time since the previous mark (or the start) as `stage`."""
        self.stages[stage] = time.monotonic() - self.started - sum(self.stages.values())


class _Connection:
    """One client connection: read, decode, answer, in order."""

    def __init__(
        self,
        server: ProxyServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
        first_bytes: bytes = b"",
    ):
        """peer: the client's address; first_bytes: read already (after a PROXY header)."""
        self.server = server
        self.settings = server.settings
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.codec = codec.RequestReader(
            max_payload_bytes=self.settings.max_payload_bytes, max_images=server.max_images
        )
        self.request: _Request | None = None
        self.spool: Spool | None = None
        self.image_sizes: list[int] = []  # of the IMAGE request being received
        self.slot: Slot | None = None  # the current IMAGE/VIDEO request's reconstruction slot
        self._last_reply_at = time.monotonic()  # or the connect
        self.deadlines = ReadDeadlines(self.settings, connected_at=time.monotonic())
        if first_bytes:
            self.codec.receive_data(first_bytes)
            self.deadlines.received(len(first_bytes), self.codec.in_frame, time.monotonic())

    def idle_for(self) -> float:
        """Seconds since the last reply (or the connect) with no byte of a new frame; 0 while busy."""
        if self.codec.in_frame or self.request is not None:
            return 0.0
        return time.monotonic() - self._last_reply_at

    async def run(self) -> None:
        try:
            await self._serve()
        except _ClientGone:
            pass
        finally:
            if self.spool is not None:
                self.spool.discard()
                self.spool = None
            self._release_slot()
            self.server.sessions.drop_connection(self)

    def _release_slot(self, finished: bool = False) -> None:
        if self.slot is not None:
            self.slot.release(finished)
            self.slot = None

    async def _serve(self) -> None:
        while True:
            try:
                event = self.codec.next_event()
            except codec.ProtocolError as exc:
                await self._protocol_error(exc)
                return
            if event is codec.NEED_DATA:
                if not await self._read():
                    return
            elif isinstance(event, codec.ConnectionClosed):
                return
            else:
                await self._dispatch(event)

    async def _read(self) -> bool:
        """Feed the codec; False when the connection should end now."""
        in_frame = self.codec.in_frame
        timeout = self.deadlines.timeout(in_frame, self.codec.pending_command, time.monotonic())
        try:
            if timeout <= 0:
                raise asyncio.TimeoutError
            data = await asyncio.wait_for(self.reader.read(READ_SIZE), timeout)
        except asyncio.TimeoutError:
            command = self.codec.pending_command
            if command is not None:
                self._ensure_request(command)
                await self._answer_error(codec.ERROR_READ_TIMEOUT)
                await _linger(self.reader, self.writer, min(LINGER_S, self.settings.read_timeout_s))
            return False
        except OSError:
            data = b""
        self.codec.receive_data(data)
        self.deadlines.received(len(data), self.codec.in_frame, time.monotonic())
        return True

    async def _protocol_error(self, exc: codec.ProtocolError) -> None:
        log.info("protocol error from %s: %s", self.peer, exc)
        if exc.command is None:
            return
        self._ensure_request(exc.command)
        await self._answer_error(exc.code)
        if exc.unread:
            # A client that writes its whole body before reading (the Android app) must get to read
            # the error, not a reset: discard what it announced, at the minimum upload rate at worst.
            unread = min(exc.unread, self.settings.max_discard_bytes)
            seconds = self.settings.upload_grace_s + unread / self.settings.min_upload_bytes_per_s
            await _linger(self.reader, self.writer, seconds, until_bytes=unread, silence_s=self.settings.read_timeout_s)
        elif exc.code != codec.ERROR_INCOMPLETE_REQUEST:
            await _linger(self.reader, self.writer, min(LINGER_S, self.settings.read_timeout_s))

    def _ensure_request(self, command: int) -> None:
        if self.request is None:
            self.request = _Request(command=command, length=0, started=time.monotonic())

    async def _dispatch(self, event: codec.Event) -> None:
        if isinstance(event, codec.FrameStart):
            self.request = _Request(event.command, event.length, time.monotonic())
            if event.command in (IMAGE, VIDEO):
                await self._admit(event.command)
        elif isinstance(event, (codec.VideoChunk, codec.ImageChunk)):
            assert self.spool is not None
            try:
                await self.spool.write(event.data)
            except OSError:
                await self._spool_failed(skip=True)
        elif isinstance(event, codec.ImageStart):
            self.image_sizes.append(event.size)
        elif isinstance(event, codec.VideoEnd):
            await self._upload_complete(self.server.backend.reconstruct_video, lambda spool, path: path)
        elif isinstance(event, codec.ImagesEnd):
            sizes = self.image_sizes
            await self._upload_complete(
                self.server.backend.reconstruct_images, lambda spool, path: spool.map_parts(sizes)
            )
        elif isinstance(event, codec.Login):
            await self._login(event)
        elif isinstance(event, codec.GetGlb):
            await self._get_glb(event.hash_text)
        elif isinstance(event, codec.ListGlbs):
            await self._list()
        elif isinstance(event, codec.Rejected):
            self._ensure_request(event.command)  # an unknown command has no FrameStart
            if self.spool is not None:  # an IMAGE frame whose framing did not add up
                self.spool.discard()
                self.spool = None
            await self._answer_error(event.code)

    def _mark(self, stage: str) -> None:
        assert self.request is not None
        self.request.mark(stage)

    async def _admit(self, command: int) -> None:
        """Check an IMAGE/VIDEO header; refuse it before its upload if it cannot run."""
        req = self.request
        assert req is not None
        user, code = await self._call(self.server.sessions.user_for, self, self.peer)
        req.user = user
        req.username = user.username if user else None
        code = code or self._refusal(command, user)
        if code is None:
            assert user is not None
            self.slot = self.server.admission.admit(user.id, req.length)
            code = None if self.slot is not None else codec.ERROR_BUSY
        if code is None:  # IMAGE and VIDEO payloads go to disk as they arrive
            try:
                self.spool = Spool(self.server.spool_dir, ".video" if command == VIDEO else ".images")
                self.image_sizes = []
            except OSError:
                log.exception("cannot create a spool file in %s", self.server.spool_dir)
                code = codec.ERROR_INTERNAL
        if code is not None:
            self.codec.skip_payload()
            await self._answer_error(code)

    def _refusal(self, command: int, user: User | None) -> str | None:
        """Why an IMAGE/VIDEO request from `user` cannot run now, as its error code; None if it can."""
        if user is None:
            return ERROR_NOT_LOGGED_IN
        if command == VIDEO and self.settings.require_vip_for_video and not user.is_vip:
            return ERROR_VIP_REQUIRED
        return None

    async def _upload_complete(
        self, method: Callable[[User, Any], Awaitable[Any]], upload: Callable[[Spool, str], Any]
    ) -> None:
        """The upload is on disk: reconstruct from it (`upload` makes what `method` takes: the
        video's path, or the photos as views of the file), then delete it."""
        spool, self.spool = self.spool, None
        assert spool is not None
        try:
            try:
                path = await spool.finish()
                argument = upload(spool, path)
            except OSError:
                self.spool = spool
                await self._spool_failed(skip=False)
                return
            self._mark("receive")
            # the file goes as soon as the backend is done with it, before the reply is sent
            await self._reconstruct(method, argument, cleanup=spool.discard)
        finally:
            spool.discard()

    async def _spool_failed(self, *, skip: bool) -> None:
        """A spool write failed (disk full...): drop the upload, answer ERROR_INTERNAL."""
        log.exception("cannot write the upload to %s", self.spool.path if self.spool else "?")
        if self.spool is not None:
            self.spool.discard()
            self.spool = None
        if skip:
            self.codec.skip_payload()
        await self._answer_error(codec.ERROR_INTERNAL)

    async def _reconstruct(
        self,
        method: Callable[[User, Any], Awaitable[Any]],
        upload: Any,
        cleanup: Callable[[], None] | None = None,
    ) -> None:
        req = self.request
        assert req is not None and req.user is not None
        result, code = None, codec.ERROR_INTERNAL
        try:
            result, code = await self._call(method, req.user, upload)
        finally:
            self._release_slot(finished=code is None)
            if cleanup is not None:
                cleanup()
        self._mark("backend")
        if code is not None:
            await self._answer_error(code)
            return
        req.backend_timings = _timings(getattr(result, "timings", None))
        if len(getattr(result, "glb", b"")) > self.settings.max_result_bytes:
            log.warning("result of %d bytes over proxy.max_result_bytes, not sent", len(result.glb))
            await self._answer_error(ResultTooLargeError.code)
            return
        try:
            header = codec.reconstruction_header(result.name, len(result.glb))
        except (ValueError, AttributeError, TypeError):
            log.exception("backend returned an unusable reconstruction")
            await self._answer_error(codec.ERROR_INTERNAL)
            return
        await self._answer([header, result.glb], OUTCOME_OK)

    async def _login(self, event: codec.Login) -> None:
        req = self.request
        assert req is not None
        req.username = event.username
        user = None
        if event.valid:
            user, _ = await self._call(self.server.backend.login, event.username, event.password, self.peer)
        self._mark("backend")
        if not isinstance(user, User):
            await self._answer([codec.encode_login(False)], OUTCOME_LOGIN_FAILED)
            return
        _, code = await self._call(self.server.sessions.login, self, self.peer, user)
        if code is not None:  # the binding could not be stored: the app would be logged in nowhere
            await self._answer([codec.encode_login(False)], code)
            return
        await self._answer([codec.encode_login(True, user.is_vip)], OUTCOME_OK)

    async def _get_glb(self, hash_text: str) -> None:
        """GET_GLB: the file streamed from storage, at most `max_downloads` at once."""
        if not self.server.downloads.try_acquire():
            await self._answer_error(codec.ERROR_BUSY)
            return
        try:
            download, code = await self._call(self.server.backend.open_glb, hash_text)
            self._mark("backend")
            if code is not None:
                await self._answer_error(code)
                return
            try:
                if download.size > self.settings.max_result_bytes:
                    await self._answer_error(ResultTooLargeError.code)
                else:
                    await self._answer([codec.glb_header(download.size)], OUTCOME_OK, download)
            finally:
                await download.close()
        finally:
            self.server.downloads.release()

    async def _list(self) -> None:
        """LIST: the logged-in user's stored GLBs, newest first, so a lost reply can be recovered."""
        req = self.request
        assert req is not None
        user, code = await self._call(self.server.sessions.user_for, self, self.peer)
        if code is not None or user is None:
            await self._answer_error(code or ERROR_NOT_LOGGED_IN)
            return
        req.username = user.username
        glbs, code = await self._call(self.server.backend.list_glbs, user, self.settings.list_limit)
        self._mark("backend")
        if code is not None:
            await self._answer_error(code)
            return
        try:
            reply = codec.encode_list(list(glbs)[: self.settings.list_limit])
        except (TypeError, ValueError, AttributeError):
            log.exception("backend returned an unusable listing")
            await self._answer_error(codec.ERROR_INTERNAL)
            return
        await self._answer([reply], OUTCOME_OK)

    async def _call(self, method: Callable[..., Awaitable[Any]], *args: Any) -> tuple[Any, str | None]:
        """(result, None), or (None, code) for a failure the client may hear about."""
        try:
            return await method(*args), None
        except ServiceError as exc:
            return None, _wire_code(exc)
        except Exception:
            log.exception("backend call failed (peer %s)", self.peer)
            return None, codec.ERROR_INTERNAL

    async def _answer_error(self, code: str) -> None:
        req = self.request
        assert req is not None
        await self._answer([codec.encode_error(req.command, code)], code)

    async def _answer(self, parts: list[bytes], outcome: str, download: Download | None = None) -> None:
        """Send the reply of the current request (`parts`, then the download's bytes) and record it."""
        req, self.request = self.request, None
        assert req is not None
        self._release_slot()  # a request refused or failed after its header gives its slot back
        self._last_reply_at = time.monotonic()
        self.deadlines.frame_ended()
        sent = 0
        try:
            sent = await self._send(parts, download)
        except _ClientGone:
            outcome = OUTCOME_DISCONNECTED
            raise
        finally:
            req.mark("send")
            self.server.record(
                RequestRecord(
                    command=codec.command_name(req.command),
                    user=req.username,
                    outcome=outcome,
                    bytes_in=codec.HEADER.size + req.length,
                    bytes_out=sent,
                    seconds=time.monotonic() - req.started,
                    timings={**req.backend_timings, **req.stages},
                    peer=self.peer,
                )
            )

    async def _send(self, parts: list[bytes], download: Download | None = None) -> int:
        """Write `parts`, then the download, in chunks: each allowed `read_timeout_s` to drain, the
        whole reply `download_grace_s` plus its size at `min_download_bytes_per_s`. Raise _ClientGone
        when the client does not take it (the request's reply is then lost, as with a disconnect)."""
        total = sum(map(len, parts)) + (download.size if download is not None else 0)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.download_grace_s + total / self.settings.min_download_bytes_per_s
        sent = 0
        try:
            for chunk in _chunks(parts, download):
                data = await chunk
                self.writer.write(data)
                left = deadline - loop.time()
                if left <= 0:
                    raise asyncio.TimeoutError
                await asyncio.wait_for(self.writer.drain(), min(self.settings.read_timeout_s, left))
                sent += len(data)
        except (OSError, asyncio.TimeoutError) as exc:
            raise _ClientGone() from exc
        if self.writer.transport.is_closing():
            raise _ClientGone()
        return sent


async def _ready(data: bytes) -> bytes:
    return data


def _chunks(parts: list[bytes], download: Download | None):
    """Awaitables of the reply's pieces, at most SEND_CHUNK bytes each: `parts`, then the download's."""
    for part in parts:
        view = memoryview(part)
        for start in range(0, len(view), SEND_CHUNK):
            yield _ready(view[start : start + SEND_CHUNK])
    if download is not None:
        left = download.size
        while left > 0:
            yield _read_exactly(download, min(SEND_CHUNK, left))
            left -= SEND_CHUNK


async def _read_exactly(download: Download, n: int) -> bytes:
    data = await download.read(n)
    if len(data) != n:  # the file changed under us: the reply's length is already sent
        raise OSError(f"the stored file ended early ({len(data)} of {n} bytes)")
    return data
