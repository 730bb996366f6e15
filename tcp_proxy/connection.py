"""One client connection: a thin loop over `codec.RequestReader`.

A connection is one task that reads bytes, feeds the codec and answers every
request before it reads on, so replies leave in request order and no timeout
runs while a request is computed. Where its request stands is a
`connection_state.ConnectionState`. Decisions:

* Timeouts: `read_timeout_s` is the longest silence inside a frame (the
  client gets `ERROR_READ_TIMEOUT` in the command's error shape, then the
  connection closes); `idle_timeout_s` is the longest silence between frames
  (closed without a reply; `idle_timeout_before_login_s` until the connection
  has acted as a user). Neither runs while the backend computes.
* An unknown command is answered `UNKNOWN_COMMAND`; its declared payload is
  skipped and the connection stays open (closed if the length is over the
  limit). An over-limit LOGIN, GET_GLB or LIST is closed after its reply;
  the rest of an over-limit IMAGE/VIDEO is discarded at the minimum upload
  rate, within `max_discard_bytes` and `max_discard_s`. Refused IMAGE/VIDEO
  requests (not logged in, model known not to be loaded, not VIP, busy, bad
  framing) are answered as soon as that is known and their payload skipped.
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
  held in memory) in the server's own folder (`spool_dir`); the backend gets
  the video's path, or the photos as views of the mapped file. The file is
  deleted when the request ends, whatever happens.
* A client that disconnects during a reconstruction does not cancel it: the
  GLB is stored with its row and stays reachable by its hash, so nothing is
  orphaned; the reply is simply not delivered.
* Before closing after an error reply, the connection shuts its side and
  briefly drains the client's unread bytes, so the reply is not lost to a
  reset.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

from . import codec
from .backend import Download, User
from .codec import IMAGE, VIDEO
from .connection_io import LINGER_S, READ_SIZE, ClientGone, linger, send_reply
from .connection_state import (
    Computing,
    ConnectionState,
    Idle,
    Receiving,
    Reconstructing,
    Replying,
    Request,
    Upload,
    Uploading,
)
from .deadlines import MinRate, ReadDeadlines
from .errors import ModelUnavailableError, NotLoggedInError, ResultTooLargeError, ServiceError, VipRequiredError
from .spool import Spool
from .upload_rules import may_send_video

if TYPE_CHECKING:
    from .server import ProxyServer

log = logging.getLogger("tcp_proxy")

ERROR_NOT_LOGGED_IN = NotLoggedInError.code
ERROR_VIP_REQUIRED = VipRequiredError.code
ERROR_MODEL_NOT_LOADED = ModelUnavailableError.code
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


Reconstruct = Callable[[User, Any], Awaitable[Any]]  # a backend method: reconstruct_images or _video
UploadArgument = Callable[[Upload, str], Any]  # what it takes, from the finished upload and its file's path


class Connection:
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
        self.state = ConnectionState()
        self._last_reply_at = time.monotonic()  # when the last reply began, or the connect
        self.deadlines = ReadDeadlines(self.settings, connected_at=time.monotonic())
        if first_bytes:
            self.codec.receive_data(first_bytes)
            self.deadlines.received(len(first_bytes), self.codec.in_frame, time.monotonic())

    def idle_for(self) -> float:
        """Seconds since the last reply was sent (or the connect) with no byte of a new frame; 0 while
        a request is read, computed or answered."""
        if self.codec.in_frame or self.state.busy:
            return 0.0
        return time.monotonic() - self._last_reply_at

    async def run(self) -> None:
        try:
            await self._serve()
        except ClientGone:
            pass
        finally:
            self.state.close()  # drops an upload still held: its slot and its file
            self.server.sessions.drop_connection(self)

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
                self._frame_begun(command)
                await self._answer_error(codec.ERROR_READ_TIMEOUT)
                await self._close_lingering(min(LINGER_S, self.settings.read_timeout_s))
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
        self._frame_begun(exc.command)
        await self._answer_error(exc.code)
        s = self.settings
        if exc.unread and exc.command in (IMAGE, VIDEO):
            # A client that writes its whole body before reading (the Android app) must get to read
            # the error, not a reset: discard what it announced while it keeps up the minimum upload
            # rate, for max_discard_bytes and max_discard_s at most. Other commands close at once.
            unread = min(exc.unread, s.max_discard_bytes)
            await self._close_lingering(s.max_discard_s, unread, s.read_timeout_s, MinRate.upload(s))
        elif exc.code != codec.ERROR_INCOMPLETE_REQUEST:
            await self._close_lingering(min(LINGER_S, self.settings.read_timeout_s))

    async def _close_lingering(
        self,
        seconds: float,
        until_bytes: int | None = None,
        silence_s: float | None = None,
        min_rate: MinRate | None = None,
    ) -> None:
        """Enter Closing, then drop what the client still sends (see `linger`)."""
        self.state.close()
        await linger(self.reader, self.writer, seconds, until_bytes, silence_s, min_rate)

    def _frame_begun(self, command: int) -> None:
        """Receive a frame of `command` from here on, unless one is under way already (a header not
        yet whole, or an unknown command's, has had no FrameStart)."""
        if isinstance(self.state.current, Idle):
            self.state.move(Receiving(Request(command, 0, time.monotonic())))

    def _compute(self) -> Request:
        """The frame is read whole: its request now waits for the backend."""
        request = self.state.expect(Receiving).request
        self.state.move(Computing(request))
        return request

    async def _dispatch(self, event: codec.Event) -> None:
        if isinstance(event, codec.FrameStart):
            request = Request(event.command, event.length, time.monotonic())
            self.state.move(Receiving(request))
            if event.command in (IMAGE, VIDEO):
                await self._admit(request)
        elif isinstance(event, (codec.VideoChunk, codec.ImageChunk)):
            await self._write_upload(event.data)
        elif isinstance(event, codec.ImageStart):
            self.state.expect(Uploading).upload.image_sizes.append(event.size)
        elif isinstance(event, codec.VideoEnd):
            await self._upload_complete(self.server.backend.reconstruct_video, _video_path)
        elif isinstance(event, codec.ImagesEnd):
            await self._upload_complete(self.server.backend.reconstruct_images, _photo_views)
        elif isinstance(event, codec.Login):
            await self._login(self._compute(), event)
        elif isinstance(event, codec.GetGlb):
            await self._get_glb(self._compute(), event.hash_text)
        elif isinstance(event, codec.ListGlbs):
            await self._list(self._compute())
        elif isinstance(event, codec.Rejected):
            self._frame_begun(event.command)  # an unknown command has no FrameStart
            await self._answer_error(event.code)  # an upload whose framing did not add up is dropped

    async def _admit(self, request: Request) -> None:
        """Check an IMAGE/VIDEO header; refuse it before its upload if it cannot run."""
        user, code = await self._call(self.server.sessions.user_for, self, self.peer)
        request.username = user.username if user else None
        if code is None:
            code = self._start_upload(request, user)
        if code is not None:
            self.codec.skip_payload()
            await self._answer_error(code)

    def _start_upload(self, request: Request, user: User | None) -> str | None:
        """Admit the request and open its spool file (the connection is then Uploading); else why
        it cannot run now, as its error code."""
        if user is None:
            return ERROR_NOT_LOGGED_IN
        if not self.server.model_loaded():
            return ERROR_MODEL_NOT_LOADED
        if request.command == VIDEO and not may_send_video(user, self.settings.require_vip_for_video):
            return ERROR_VIP_REQUIRED
        slot = self.server.admission.admit(user.id, request.length)
        if slot is None:
            return codec.ERROR_BUSY
        try:
            spool = Spool(self.server.spool_dir, ".video" if request.command == VIDEO else ".images")
        except OSError:
            log.exception("cannot create a spool file in %s", self.server.spool_dir)
            slot.release()
            return codec.ERROR_INTERNAL
        self.state.move(Uploading(request, Upload(user, slot, spool)))
        self.deadlines.logged_in = True
        return None

    async def _write_upload(self, data: bytes) -> None:
        upload = self.state.expect(Uploading).upload
        try:
            await upload.spool.write(data)
        except OSError:
            await self._spool_failed(upload, skip=True)

    async def _upload_complete(self, method: Reconstruct, argument_of: UploadArgument) -> None:
        """The upload is on disk: reconstruct from it (`argument_of` makes what `method` takes: the
        video's path, or the photos as views of the file)."""
        uploading = self.state.expect(Uploading)
        upload = uploading.upload
        try:
            argument = argument_of(upload, await upload.spool.finish())
        except OSError:
            await self._spool_failed(upload, skip=False)
            return
        uploading.request.mark("receive")
        await self._reconstruct(self.state.move(Reconstructing(uploading.request, upload)), method, argument)

    async def _spool_failed(self, upload: Upload, *, skip: bool) -> None:
        """A spool write failed (disk full...): drop the upload, answer ERROR_INTERNAL."""
        log.exception("cannot write the upload to %s", upload.spool.path)
        if skip:
            self.codec.skip_payload()
        await self._answer_error(codec.ERROR_INTERNAL)

    async def _reconstruct(self, reconstructing: Reconstructing, method: Reconstruct, argument: Any) -> None:
        request, upload = reconstructing.request, reconstructing.upload
        result, code = None, codec.ERROR_INTERNAL
        try:
            result, code = await self._call(method, upload.user, argument)
        finally:
            upload.slot.release(finished=code is None)
            upload.spool.discard()  # as soon as the backend is done with it, before the reply is sent
        request.mark("backend")
        if code is not None:
            await self._answer_error(code)
            return
        request.backend_timings = _timings(getattr(result, "timings", None))
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

    async def _login(self, request: Request, event: codec.Login) -> None:
        request.username = event.username
        user = None
        if event.valid:
            user, _ = await self._call(self.server.backend.login, event.username, event.password, self.peer)
        request.mark("backend")
        if not isinstance(user, User):
            await self._answer([codec.encode_login(False)], OUTCOME_LOGIN_FAILED)
            return
        _, code = await self._call(self.server.sessions.login, self, self.peer, user)
        if code is not None:  # the binding could not be stored: the app would be logged in nowhere
            await self._answer([codec.encode_login(False)], code)
            return
        self.deadlines.logged_in = True
        await self._answer([codec.encode_login(True, user.is_vip)], OUTCOME_OK)

    async def _get_glb(self, request: Request, hash_text: str) -> None:
        """GET_GLB: the file streamed from storage, at most `max_downloads` at once (and
        `max_downloads_per_address` to one address)."""
        if not self.server.acquire_download(self.peer):
            await self._answer_error(codec.ERROR_BUSY)
            return
        try:
            download, code = await self._call(self.server.backend.open_glb, hash_text)
            request.mark("backend")
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
            self.server.release_download(self.peer)

    async def _list(self, request: Request) -> None:
        """LIST: the stored GLBs of the user logged in on this connection (an address binding does not
        count), newest first, so a lost reply can be recovered."""
        user, code = await self._call(self.server.sessions.connection_user, self)
        if code is not None or user is None:
            await self._answer_error(code or ERROR_NOT_LOGGED_IN)
            return
        request.username = user.username
        glbs, code = await self._call(self.server.backend.list_glbs, user, self.settings.list_limit)
        request.mark("backend")
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
        await self._answer([codec.encode_error(self.state.request.command, code)], code)

    async def _answer(self, parts: list[bytes], outcome: str, download: Download | None = None) -> None:
        """Send the reply of the current request (`parts`, then the download's bytes) and record it."""
        # a request refused or failed after its header gives its slot back here, before the reply
        request = self.state.move(Replying(self.state.request)).request
        self._last_reply_at = time.monotonic()
        self.deadlines.frame_ended()
        sent = 0
        try:
            sent = await send_reply(self.writer, self.settings, parts, download)
        except ClientGone:
            outcome = OUTCOME_DISCONNECTED
            raise
        finally:
            request.mark("send")
            self.server.record(
                RequestRecord(
                    command=codec.command_name(request.command),
                    user=request.username,
                    outcome=outcome,
                    bytes_in=codec.HEADER.size + request.length,
                    bytes_out=sent,
                    seconds=time.monotonic() - request.started,
                    timings={**request.backend_timings, **request.stages},
                    peer=self.peer,
                )
            )
        self.state.move(Idle())


def _video_path(upload: Upload, path: str) -> str:
    return path


def _photo_views(upload: Upload, path: str) -> list[memoryview]:
    return upload.spool.map_parts(upload.image_sizes)


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

