"""Every setting reaches the component that consumes it.

`REACH` holds one check per field of `AppSettings` (every section, `proxy`
included): the component built with the setting changed must behave
differently from the one built with the default, in the way the setting
says. A field with no entry fails `test_every_setting_has_a_reach_check`,
so a new setting cannot be added without showing where it takes effect, and
a setting disconnected from its consumer fails its own check.

Where behaviour needs a heavy set-up (a model's forward pass, a GPU, an S3
service, a Ray deployment), the check reads the value in the consumer's
built object instead; each such entry says so.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import struct
import time
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from proxy_fakes import FakeBackend, frame, image_payload
from proxy_serving import (
    FAILED,
    LOGIN_DEMO,
    OK_DEMO,
    connect,
    login,
    read_login_reply,
    serving,
    spooled_files,
    wait_for,
)

from serve_app.config import (
    AppSettings,
    AuthSettings,
    FrameSettings,
    ModelSettings,
    StorageSettings,
)
from serve_app.export.options import ExportOptions
from tcp_proxy.codec import GET_GLB, IMAGE, LIST, LOGIN, VIDEO
from tcp_proxy.server import start_server
from tcp_proxy.settings import ProxySettings
from clock import Clock

Check = Callable[..., None]
REACH: dict[str, Check] = {}


def reaches(*settings: str) -> Callable[[Check], Check]:
    """Register the decorated check for each dotted setting name."""

    def register(check: Check) -> Check:
        for name in settings:
            assert name not in REACH, f"two checks for {name}"
            REACH[name] = check
        return check

    return register


def every_setting() -> list[str]:
    """`section.field` for every field of every section of AppSettings."""
    names = []
    for section in dataclasses.fields(AppSettings):
        names += [f"{section.name}.{f.name}" for f in dataclasses.fields(section.default_factory)]
    return names


def test_every_setting_has_a_reach_check():
    missing = sorted(set(every_setting()) - set(REACH))
    unknown = sorted(set(REACH) - set(every_setting()))
    assert not missing, f"settings without an entry in REACH (tests/test_settings_reach.py): {missing}"
    assert not unknown, f"REACH entries for settings that do not exist: {unknown}"


# == proxy: a real ProxyServer on loopback with the in-memory backend ==========
def run(coroutine) -> object:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def on_server(probe, backend=None, **overrides):
    """probe(server) on a server with `overrides`, its result."""

    async def go():
        async with serving(backend or FakeBackend(), **overrides) as server:
            return await probe(server)

    return run(go())


async def closed_within(reader, seconds: float) -> bytes | None:
    """What the server sent before closing the connection, when it closed within `seconds`; else None."""
    try:
        return await asyncio.wait_for(reader.read(), seconds)
    except TimeoutError:
        return None
    except ConnectionResetError:
        return b""


QUIET_S = 1.0  # how long a default (long) timeout is seen not to fire
SHORT = 0.2  # a changed timeout
CLOSE_S = 5.0  # how long a short timeout may take to show, on a loaded machine


def short_and_default_differ(probe, setting: str) -> None:
    """probe(server, wait) -> what the client saw (None: nothing yet); a short value shows it, the default not."""
    assert on_server(lambda server: probe(server, CLOSE_S), **{setting: SHORT}) is not None
    assert on_server(lambda server: probe(server, QUIET_S)) is None


async def upload_reply(server, payload_size: int = 100, frame_bytes=LOGIN_DEMO):
    reader, writer = await connect(server)
    assert await login(reader, writer, frame_bytes) != FAILED
    writer.write(frame(IMAGE, image_payload([b"u" * (payload_size - 8)])))
    name = await read_block(reader)
    reply = (name.decode(), await read_block(reader))
    writer.close()
    return reply


async def read_block(reader) -> bytes:
    (n,) = struct.unpack(">I", await reader.readexactly(4))
    return await reader.readexactly(n)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def can_connect(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection(host, port)
    except OSError:
        return False
    writer.close()
    return True


@reaches("proxy.host")
def check_host(**_):
    async def reachable(host: str) -> tuple[bool, bool]:
        server = await start_server(ProxySettings(host=host, port=0), FakeBackend(), max_images=5)
        try:
            return await can_connect("127.0.0.2", server.port), await can_connect("127.0.0.1", server.port)
        finally:
            await server.close()

    assert run(reachable("127.0.0.2")) == (True, False)
    assert run(reachable("127.0.0.1")) == (False, True)


@reaches("proxy.port")
def check_port(**_):
    async def listens_on(port: int) -> int:
        server = await start_server(ProxySettings(host="127.0.0.1", port=port), FakeBackend(), max_images=5)
        try:
            assert await can_connect("127.0.0.1", server.port)
            return server.port
        finally:
            await server.close()

    port = free_port()
    assert run(listens_on(port)) == port
    assert run(listens_on(0)) != port


@reaches("proxy.max_payload_bytes")
def check_max_payload_bytes(**_):
    assert on_server(upload_reply, max_payload_bytes=99) == ("", b"ERROR_PAYLOAD_TOO_LARGE")
    assert on_server(upload_reply)[0].endswith(".glb")


@reaches("proxy.read_timeout_s")
def check_read_timeout_s(**_):
    async def silent_inside_upload(server, wait):
        reader, writer = await connect(server)
        await login(reader, writer)
        writer.write(struct.pack(">BI", IMAGE, 1000) + b"\0\0\0\1")  # then silence inside the payload
        return await closed_within(reader, wait)

    assert on_server(lambda s: silent_inside_upload(s, CLOSE_S), read_timeout_s=SHORT).endswith(b"ERROR_READ_TIMEOUT")
    assert on_server(lambda s: silent_inside_upload(s, QUIET_S)) is None


@reaches("proxy.idle_timeout_s")
def check_idle_timeout_s(**_):
    async def silent_after_login(server, wait):
        reader, writer = await connect(server)
        await login(reader, writer)
        return await closed_within(reader, wait)

    short_and_default_differ(silent_after_login, "idle_timeout_s")


@reaches("proxy.idle_timeout_before_login_s")
def check_idle_timeout_before_login_s(**_):
    async def silent_without_login(server, wait):
        reader, writer = await connect(server)
        writer.write(frame(9, b""))  # answered UNKNOWN_COMMAND; no login
        await read_block(reader)
        return await closed_within(reader, wait)

    short_and_default_differ(silent_without_login, "idle_timeout_before_login_s")


@reaches("proxy.first_byte_timeout_s")
def check_first_byte_timeout_s(**_):
    async def never_speaks(server, wait):
        reader, _ = await connect(server)
        return await closed_within(reader, wait)

    short_and_default_differ(never_speaks, "first_byte_timeout_s")


@reaches("proxy.small_frame_timeout_s")
def check_small_frame_timeout_s(**_):
    async def half_a_login(server, wait):
        reader, writer = await connect(server)
        writer.write(struct.pack(">BI", LOGIN, 100) + b"{")
        return await closed_within(reader, wait)

    assert on_server(lambda s: half_a_login(s, CLOSE_S), small_frame_timeout_s=SHORT) == FAILED
    assert on_server(lambda s: half_a_login(s, QUIET_S)) is None


async def upload_then_silence(server, wait):
    """64 KiB of an IMAGE payload at once, then silence: due after grace + 64 KiB / rate."""
    reader, writer = await connect(server)
    await login(reader, writer)
    writer.write(struct.pack(">BI", IMAGE, 10**6) + struct.pack(">II", 1, 10**6 - 8) + b"u" * 65536)
    return await closed_within(reader, wait)


@reaches("proxy.min_upload_bytes_per_s")
def check_min_upload_bytes_per_s(**_):
    # no grace: at the default 16 KiB/s the bytes sent are due in 4 s; at 1 GB/s at once
    fast = on_server(lambda s: upload_then_silence(s, CLOSE_S), upload_grace_s=0, min_upload_bytes_per_s=1e9)
    assert fast.endswith(b"ERROR_READ_TIMEOUT")
    assert on_server(lambda s: upload_then_silence(s, QUIET_S), upload_grace_s=0) is None


@reaches("proxy.upload_grace_s")
def check_upload_grace_s(**_):
    fast = on_server(lambda s: upload_then_silence(s, CLOSE_S), upload_grace_s=0, min_upload_bytes_per_s=1e9)
    assert fast.endswith(b"ERROR_READ_TIMEOUT")
    assert on_server(lambda s: upload_then_silence(s, QUIET_S), min_upload_bytes_per_s=1e9) is None


async def discarding(server, send: bytes, wait: float) -> bool:
    """An over-limit IMAGE answered, then `send` of its body: whether the server closed within `wait`."""
    reader, writer = await connect(server)
    await login(reader, writer)
    writer.write(struct.pack(">BI", IMAGE, 10**6))
    await read_block(reader)
    await read_block(reader)  # ERROR_PAYLOAD_TOO_LARGE
    writer.write(send)
    try:
        await wait_for(lambda: server.active_connections == 0, timeout=wait)
        return True
    except AssertionError:
        return False


@reaches("proxy.max_discard_bytes")
def check_max_discard_bytes(**_):
    assert on_server(lambda s: discarding(s, b"d" * 100, CLOSE_S), max_payload_bytes=64, max_discard_bytes=100)
    assert not on_server(lambda s: discarding(s, b"d" * 100, QUIET_S), max_payload_bytes=64)


@reaches("proxy.max_discard_s")
def check_max_discard_s(**_):
    assert on_server(lambda s: discarding(s, b"", CLOSE_S), max_payload_bytes=64, max_discard_s=SHORT)
    assert not on_server(lambda s: discarding(s, b"", QUIET_S), max_payload_bytes=64)


async def second_connection_login(server) -> bytes:
    first = await connect(server)
    await wait_for(lambda: server.active_connections == 1)
    reader, writer = await connect(server)
    writer.write(LOGIN_DEMO)
    reply = await read_login_reply(reader)
    first[1].close()
    writer.close()
    return reply


@reaches("proxy.max_connections")
def check_max_connections(**_):
    assert on_server(second_connection_login, max_connections=1) == FAILED
    assert on_server(second_connection_login) == OK_DEMO


@reaches("proxy.max_connections_per_address")
def check_max_connections_per_address(**_):
    assert on_server(second_connection_login, max_connections_per_address=1) == FAILED
    assert on_server(second_connection_login) == OK_DEMO


@reaches("proxy.max_pending_reconstructions")
def check_max_pending_reconstructions(**_):
    assert on_server(upload_reply, max_pending_reconstructions=0) == ("", b"ERROR_BUSY")
    assert on_server(upload_reply)[0].endswith(".glb")


@reaches("proxy.max_upload_bytes_in_flight")
def check_max_upload_bytes_in_flight(**_):
    assert on_server(upload_reply, max_upload_bytes_in_flight=99) == ("", b"ERROR_BUSY")
    assert on_server(upload_reply)[0].endswith(".glb")


async def second_upload_of_one_user(server) -> tuple[str, bytes]:
    """One upload held by the backend, then another of the same user."""
    server.backend.gate = asyncio.Event()
    reader, writer = await connect(server)
    await login(reader, writer)
    writer.write(frame(IMAGE, image_payload([b"held"])))
    await wait_for(lambda: server.backend.started == 1)
    second = asyncio.ensure_future(upload_reply(server))
    try:
        await wait_for(lambda: second.done() or server.backend.started == 2)
    finally:
        server.backend.gate.set()
    writer.close()
    return await second


@reaches("proxy.max_pending_per_user")
def check_max_pending_per_user(**_):
    assert on_server(second_upload_of_one_user, max_pending_per_user=1) == ("", b"ERROR_BUSY")
    assert on_server(second_upload_of_one_user)[0].endswith(".glb")


@reaches("proxy.max_wait_s")
def check_max_wait_s(**_):
    # the server's own Admission, given a pace: 5 s a reconstruction, one queued ahead
    async def refused(server) -> bool:
        admission = server.admission
        clock = [100.0]
        admission.estimate._clock = lambda: clock[0]
        first, second = admission.admit(1), admission.admit(1)
        first.uploaded()
        second.uploaded()
        clock[0] += 5.0
        first.release(finished=True)
        return admission.admit(2) is None

    assert on_server(refused, max_wait_s=4.0)
    assert not on_server(refused)


@reaches("proxy.session_ttl_s")
def check_session_ttl_s(**_):
    async def upload_on_a_new_connection_later(server):
        reader, writer = await connect(server)
        await login(reader, writer)
        writer.close()
        await asyncio.sleep(0.5)  # the binding's age is what is tested
        reader, writer = await connect(server)
        writer.write(frame(IMAGE, image_payload([b"later"])))
        name = await read_block(reader)
        return name, await read_block(reader)

    assert on_server(upload_on_a_new_connection_later, session_ttl_s=0.2) == (b"", b"ERROR_NOT_LOGGED_IN")
    assert on_server(upload_on_a_new_connection_later)[0].endswith(b".glb")


async def upload_without_login(server):
    await upload_reply(server)  # logs in on its own connection
    reader, writer = await connect(server)
    writer.write(frame(IMAGE, image_payload([b"bound"])))
    return (await read_block(reader)), await read_block(reader)


@reaches("proxy.bind_sessions_to_ip")
def check_bind_sessions_to_ip(**_):
    assert on_server(upload_without_login, bind_sessions_to_ip=False) == (b"", b"ERROR_NOT_LOGGED_IN")
    assert on_server(upload_without_login)[0].endswith(b".glb")


@reaches("proxy.ipv6_prefix_length")
def check_ipv6_prefix_length(**_):
    async def same_network_second_download(server) -> bool:
        assert server.acquire_download("2001:db8:1:2::1")
        return server.acquire_download("2001:db8:1:2::2")

    assert on_server(same_network_second_download, max_downloads_per_address=1, ipv6_prefix_length=128)
    assert not on_server(same_network_second_download, max_downloads_per_address=1)


@reaches("proxy.require_vip_for_video")
def check_require_vip_for_video(**_):
    async def demo_video(server):
        reader, writer = await connect(server)
        await login(reader, writer)
        writer.write(frame(VIDEO, b"a video"))
        return await read_block(reader), await read_block(reader)

    assert on_server(demo_video, require_vip_for_video=False)[0].endswith(b".glb")
    assert on_server(demo_video) == (b"", b"ERROR_VIP_REQUIRED")


class ListAllBackend(FakeBackend):
    async def list_glbs(self, user, limit):
        return await super().list_glbs(user, 10**6)


@reaches("proxy.list_limit")
def check_list_limit(**_):
    async def listed(server) -> int:
        reader, writer = await connect(server)
        await login(reader, writer)
        for i in range(3):
            writer.write(frame(IMAGE, image_payload([b"%d" % i])))
            await read_block(reader)
            await read_block(reader)
        writer.write(frame(LIST, b""))
        return len(json.loads(await read_block(reader)))

    assert on_server(listed, ListAllBackend(), list_limit=2) == 2
    assert on_server(listed, ListAllBackend()) == 3


@reaches("proxy.max_downloads")
def check_max_downloads(**_):
    async def second_download(server) -> bool:
        assert server.acquire_download("10.0.0.1")
        return server.acquire_download("10.0.0.2")

    assert not on_server(second_download, max_downloads=1)
    assert on_server(second_download)


@reaches("proxy.max_downloads_per_address")
def check_max_downloads_per_address(**_):
    async def second_download(server) -> bool:
        assert server.acquire_download("10.0.0.1")
        return server.acquire_download("10.0.0.1")

    assert not on_server(second_download, max_downloads_per_address=1)
    assert on_server(second_download)


class BigGlbBackend(FakeBackend):
    """GET_GLB of any well-formed hash: 32 MiB, far more than socket buffers hold."""

    async def open_glb(self, hash_text):
        from tcp_proxy.backend import BytesDownload

        return BytesDownload(b"glTF" + bytes(32 << 20))


async def unread_download_dropped(server, wait: float) -> bool:
    """A GET_GLB whose reply is never read: whether the server dropped the client within `wait`."""
    _, writer = await connect(server)
    writer.write(frame(GET_GLB, b"a" * 64))
    try:
        await wait_for(lambda: any(r.outcome == "DISCONNECTED" for r in server.records), timeout=wait)
        return True
    except AssertionError:
        return False
    finally:
        writer.close()


@reaches("proxy.min_download_bytes_per_s")
def check_min_download_bytes_per_s(**_):
    fast = {"download_grace_s": SHORT, "min_download_bytes_per_s": 1e9}
    assert on_server(lambda s: unread_download_dropped(s, CLOSE_S), BigGlbBackend(), **fast)
    assert not on_server(lambda s: unread_download_dropped(s, QUIET_S), BigGlbBackend(), download_grace_s=SHORT)


@reaches("proxy.download_grace_s")
def check_download_grace_s(**_):
    fast = {"download_grace_s": SHORT, "min_download_bytes_per_s": 1e9}
    assert on_server(lambda s: unread_download_dropped(s, CLOSE_S), BigGlbBackend(), **fast)
    assert not on_server(lambda s: unread_download_dropped(s, QUIET_S), BigGlbBackend(), min_download_bytes_per_s=1e9)


@reaches("proxy.max_result_bytes")
def check_max_result_bytes(**_):
    assert on_server(upload_reply, max_result_bytes=67) == ("", b"ERROR_RESULT_TOO_LARGE")  # b"glTF" + 64 bytes
    assert on_server(upload_reply)[0].endswith(".glb")


@reaches("proxy.spool_dir")
def check_spool_dir(tmp_path, **_):
    async def spooled_while_held(server) -> int:
        server.backend.gate = asyncio.Event()
        reader, writer = await connect(server)
        await login(reader, writer)
        writer.write(frame(IMAGE, image_payload([b"spooled"])))
        await wait_for(lambda: server.backend.started == 1)
        count = len(spooled_files(tmp_path))
        server.backend.gate.set()
        writer.close()
        return count

    assert on_server(spooled_while_held, spool_dir=str(tmp_path)) == 1
    assert on_server(spooled_while_held) == 0


@reaches("proxy.proxy_protocol_from")
def check_proxy_protocol_from(**_):
    async def plain_login(server):
        reader, writer = await connect(server)
        writer.write(LOGIN_DEMO)  # from a balancer this would have to be a PROXY header
        return await closed_within(reader, CLOSE_S)

    async def login_reply(server):
        return await login(*await connect(server))

    assert on_server(plain_login, proxy_protocol_from="127.0.0.1/32") == b""  # closed without a reply
    assert on_server(login_reply) == OK_DEMO


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> list[tuple[str, str]]:
    """Two self-signed (certificate, key) pairs."""
    import subprocess

    folder = tmp_path_factory.mktemp("tls")
    pairs = []
    for name in ("one", "two"):
        cert, key = folder / f"{name}.pem", folder / f"{name}.key"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True, timeout=60,
        )
        pairs.append((str(cert), str(key)))
    return pairs


async def tls_login(server, cafile: str) -> bytes:
    import ssl

    client = ssl.create_default_context(cafile=cafile)
    client.check_hostname = False
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=client)
    reply = await login(reader, writer)
    writer.close()
    return reply


@reaches("proxy.tls_cert_file")
def check_tls_cert_file(certificates, **_):
    (cert, key), (other_cert, _) = certificates
    assert on_server(lambda s: tls_login(s, cert), tls_cert_file=cert, tls_key_file=key) == OK_DEMO
    with pytest.raises(OSError):  # a client that trusts only another certificate refuses this one
        on_server(lambda s: tls_login(s, other_cert), tls_cert_file=cert, tls_key_file=key)


@reaches("proxy.tls_key_file")
def check_tls_key_file(certificates, **_):
    import ssl

    (cert, key), (_, other_key) = certificates
    assert on_server(lambda s: tls_login(s, cert), tls_cert_file=cert, tls_key_file=key) == OK_DEMO
    with pytest.raises(ssl.SSLError):  # the key is read: one that does not match the certificate is refused
        on_server(lambda s: tls_login(s, cert), tls_cert_file=cert, tls_key_file=other_key)


@reaches("proxy.handover_s", "proxy.drain_timeout_s")
def check_shutdown_times(**_):
    # value in the built deployment options: the ingress's graceful shutdown covers the handover and the
    # drain; each stage's covers the drain (running the drain itself needs a Serve redeploy)
    from serve_app.app import ingress_shutdown

    default = ingress_shutdown(AppSettings())["graceful_shutdown_timeout_s"]
    longer = AppSettings.from_dict({"proxy": {"handover_s": 40.0, "drain_timeout_s": 700.0}})
    assert ingress_shutdown(longer)["graceful_shutdown_timeout_s"] == default + 10.0 + 100.0


# == auth: the login throttle and the accounts ================================
def user_store(tmp_path: Path, auth: AuthSettings, clock=None):
    from serve_app.storage import Database, ScryptParams, UserStore
    from serve_app.storage.throttle import LoginThrottle

    db = Database(f"sqlite:///{tmp_path / f'users-{time.monotonic_ns()}.db'}")
    db.upgrade()
    throttle = LoginThrottle(db, auth, clock=clock) if clock else None
    users = UserStore(db, auth, password_params=ScryptParams(n=2**10, r=8, p=1), throttle=throttle)
    users.create("owner", "right password")
    return users


def refused_after(tmp_path, auth: AuthSettings, failures: int, gap_s: float = 0.0, address: str = "10.0.0.9") -> bool:
    """`failures` wrong passwords, `gap_s` apart; then whether the right one is refused."""
    clock = Clock(1_000_000.0)
    users = user_store(tmp_path, auth, clock)
    for _ in range(failures):
        assert users.authenticate("owner", "wrong", "10.0.0.1") is None
        clock.now += gap_s
    return users.authenticate("owner", "right password", address) is None


@reaches("auth.max_failures")
def check_max_failures(tmp_path, **_):
    assert refused_after(tmp_path, AuthSettings(max_failures=2), failures=2)
    assert not refused_after(tmp_path, AuthSettings(), failures=2)


@reaches("auth.failure_window_s")
def check_failure_window_s(tmp_path, **_):
    assert not refused_after(tmp_path, AuthSettings(max_failures=2, failure_window_s=5.0), failures=2, gap_s=10.0)
    assert refused_after(tmp_path, AuthSettings(max_failures=2), failures=2, gap_s=10.0)


@reaches("auth.lockout_s")
def check_lockout_s(tmp_path, **_):
    assert not refused_after(tmp_path, AuthSettings(max_failures=1, lockout_s=5.0), failures=1, gap_s=10.0)
    assert refused_after(tmp_path, AuthSettings(max_failures=1), failures=1, gap_s=10.0)


@reaches("auth.known_address_s")
def check_known_address_s(tmp_path, **_):
    def owner_refused_at_home(auth: AuthSettings) -> bool:
        clock = Clock(1_000_000.0)
        users = user_store(tmp_path, auth, clock)
        assert users.authenticate("owner", "right password", "10.0.0.5") is not None  # home address
        clock.now += 60.0
        assert users.authenticate("owner", "wrong", "10.0.0.1") is None  # locks the username
        return users.authenticate("owner", "right password", "10.0.0.5") is None

    assert owner_refused_at_home(AuthSettings(max_failures=1, known_address_s=10.0))
    assert not owner_refused_at_home(AuthSettings(max_failures=1))


def accounts_of(tmp_path: Path, **sections):
    from serve_app.accounts import Accounts

    storage = {"database_url": f"sqlite:///{tmp_path / 'accounts.db'}", "storage_root": str(tmp_path)}
    settings = AppSettings.from_dict({**sections, "storage": {**storage, **sections.get("storage", {})}})
    return run(Accounts.open(settings))


def make_user(tmp_path: Path, name: str = "alice", password: str = "alice password"):
    from serve_app.storage import Database, ScryptParams, UserStore

    db = Database(f"sqlite:///{tmp_path / 'accounts.db'}")
    db.upgrade()
    user = UserStore(db, AuthSettings(), password_params=ScryptParams(n=2**10, r=8, p=1)).create(name, password)
    db.dispose()
    return user


@reaches("auth.account_recheck_s")
def check_account_recheck_s(tmp_path, **_):
    from serve_app.storage import Database, UserStore

    make_user(tmp_path)

    def still_active_after_disabling(recheck_s: float) -> bool:
        accounts = accounts_of(tmp_path, auth={"account_recheck_s": recheck_s})
        user = run(accounts.login("alice", "alice password", "10.0.0.1"))
        db = Database(f"sqlite:///{tmp_path / 'accounts.db'}")
        UserStore(db, AuthSettings()).set_status("alice", False)
        seen = run(accounts.current(user))
        UserStore(db, AuthSettings()).set_status("alice", True)
        db.dispose()
        accounts.close()
        return seen is not None

    assert not still_active_after_disabling(0.0)
    assert still_active_after_disabling(3600.0)


@reaches("auth.max_login_queue")
def check_max_login_queue(tmp_path, **_):
    from serve_app.accounts import LOGIN_CONCURRENCY

    make_user(tmp_path)

    def login_while_others_are_checked(queue_settings: dict) -> bool:
        """A right password while LOGIN_CONCURRENCY other logins hold the accounts' count."""
        accounts = accounts_of(tmp_path, auth=queue_settings)
        for _ in range(LOGIN_CONCURRENCY):
            assert accounts._logins.try_acquire()
        user = run(accounts.login("alice", "alice password", "10.0.0.1"))
        accounts.close()
        return user is not None

    assert not login_while_others_are_checked({"max_login_queue": 0})  # no room to wait: refused at once
    assert login_while_others_are_checked({})  # the default lets it wait its turn


# == storage ==================================================================
@reaches("storage.database_url")
def check_database_url(tmp_path, **_):
    from serve_app.accounts import Accounts

    make_user(tmp_path)

    def logs_in(url: str) -> bool:
        accounts = run(Accounts.open(AppSettings.from_dict({"storage": {"database_url": url, "storage_root": str(tmp_path)}})))
        user = run(accounts.login("alice", "alice password", "10.0.0.1"))
        accounts.close()
        return user is not None

    assert logs_in(f"sqlite:///{tmp_path / 'accounts.db'}")
    assert not logs_in(f"sqlite:///{tmp_path / 'another.db'}")


@reaches("storage.database_url_env", "storage.database_url_file")
def check_database_url_sources(tmp_path, monkeypatch, **_):
    # the source is read when the settings are built; database_url then holds the URL its consumers open
    url = f"sqlite:///{tmp_path / 'from-source.db'}"
    monkeypatch.setenv("REACH_TEST_DATABASE_URL", url)
    (tmp_path / "url.txt").write_text(url + "\n")
    assert StorageSettings(database_url_env="REACH_TEST_DATABASE_URL").database_url == url
    assert StorageSettings(database_url_file=str(tmp_path / "url.txt")).database_url == url
    assert StorageSettings().database_url != url


def export_settings(tmp_path: Path, storage_root: str) -> AppSettings:
    return AppSettings.from_dict(
        {"storage": {"database_url": f"sqlite:///{tmp_path / 'accounts.db'}", "storage_root": storage_root}}
    )


@reaches("storage.storage_root")
def check_storage_root(tmp_path, **_):
    from serve_app.stages import Job
    from serve_app.stages.export import ExportStage
    from serve_app.stages.messages import Predictions

    user = make_user(tmp_path)
    for root in ("root-one", "root-two"):
        stage = ExportStage(export_settings(tmp_path, str(tmp_path / root)))
        stage.run(Predictions(Job(user.id, "reach"), predictions(), frame_count=2))
    assert len(list((tmp_path / "root-one" / "out").rglob("*.glb"))) == 1
    assert len(list((tmp_path / "root-two" / "out").rglob("*.glb"))) == 1


@reaches("storage.s3_endpoint_url")
def check_s3_endpoint_url(**_):
    # value in the built storage root (the S3 client's options); reaching it needs an S3 service
    pytest.importorskip("s3fs")
    from serve_app.storage.blob_root import settings_root

    def endpoint(url: str) -> str | None:
        root = settings_root(StorageSettings(storage_root="s3://bucket/prefix", s3_endpoint_url=url))
        return root.fs.storage_options.get("endpoint_url")

    assert endpoint("http://127.0.0.1:9") == "http://127.0.0.1:9"
    assert endpoint("") is None


def export_saves(tmp_path: Path, saves: int, **storage) -> tuple[int, str | None]:
    """(results stored, the error code of the first refused save) after `saves` exports of one user."""
    from serve_app.stages import Job
    from serve_app.stages.export import ExportStage
    from serve_app.stages.messages import Predictions
    from serve_app.storage import Database
    from serve_app.storage.models import GlbFile
    from tcp_proxy.errors import ServiceError

    user = make_user(tmp_path, f"user{time.monotonic_ns()}")
    settings = AppSettings.from_dict(
        {"storage": {"database_url": f"sqlite:///{tmp_path / 'accounts.db'}", "storage_root": str(tmp_path), **storage}}
    )
    stage, refused = ExportStage(settings), None
    for i in range(saves):
        arrays = predictions()
        arrays["world_points"] += i  # a different GLB each time
        try:
            stage.run(Predictions(Job(user.id, f"save {i}"), arrays, frame_count=2))
        except ServiceError as exc:
            refused = refused or exc.code
    db = Database(settings.storage.database_url)
    with db.session() as session:
        stored = session.query(GlbFile).filter(GlbFile.user_id == user.id).count()
    db.dispose()
    return stored, refused


@reaches("storage.max_results_per_user")
def check_max_results_per_user(tmp_path, **_):
    assert export_saves(tmp_path, 2, max_results_per_user=1) == (1, "ERROR_QUOTA_EXCEEDED")
    assert export_saves(tmp_path, 2) == (2, None)


@reaches("storage.max_bytes_per_user")
def check_max_bytes_per_user(tmp_path, **_):
    assert export_saves(tmp_path, 1, max_bytes_per_user=100) == (0, "ERROR_QUOTA_EXCEEDED")  # a GLB is larger
    assert export_saves(tmp_path, 1) == (1, None)


@reaches("storage.quota_policy")
def check_quota_policy(tmp_path, **_):
    assert export_saves(tmp_path, 2, max_results_per_user=1, quota_policy="evict_oldest") == (1, None)
    assert export_saves(tmp_path, 2, max_results_per_user=1) == (1, "ERROR_QUOTA_EXCEEDED")


@reaches("storage.predictions_ttl_s")
def check_predictions_ttl_s(tmp_path, **_):
    def stored_predictions(folder: Path, **storage) -> int:
        folder.mkdir()
        assert export_saves(folder, 1, **storage) == (1, None)
        return len(list(folder.glob("out/*/*.npz")))

    assert stored_predictions(tmp_path / "a", predictions_ttl_s=0) == 0
    assert stored_predictions(tmp_path / "b", predictions_ttl_s=60) == 1
    assert stored_predictions(tmp_path / "c") == 1


def old_results(tmp_path: Path, count: int = 3, **storage) -> StorageSettings:
    """`count` results stored ten days ago; the storage settings with `storage` that hold them."""
    from datetime import timedelta

    from serve_app.storage import Database, GlbStore
    from serve_app.storage.models import GlbFile, utcnow

    tmp_path.mkdir(parents=True, exist_ok=True)
    user = make_user(tmp_path, f"user{time.monotonic_ns()}")
    settings = StorageSettings(database_url=f"sqlite:///{tmp_path / 'accounts.db'}", storage_root=str(tmp_path), **storage)
    db = Database(settings.database_url)
    store = GlbStore(db, tmp_path)
    for i in range(count):
        store.save(b"glTF old %d" % i, user.id, "old")
    with db.session() as session:
        session.query(GlbFile).update({GlbFile.created_at: utcnow() - timedelta(days=10)})
    db.dispose()
    return settings


def expired_by_one_round(settings: StorageSettings) -> int:
    from serve_app.storage import Database
    from serve_app.storage.blob_root import settings_root
    from serve_app.storage.lifecycle import ExpiryTimer, ResultLifecycle

    db = Database(settings.database_url)
    try:
        return len(ExpiryTimer(settings).run_once(ResultLifecycle(db, settings_root(settings))).hashes)
    finally:
        db.dispose()


@reaches("storage.retention_days")
def check_retention_days(tmp_path, **_):
    assert expired_by_one_round(old_results(tmp_path / "a", retention_days=5)) == 3
    assert expired_by_one_round(old_results(tmp_path / "b")) == 0
    assert expired_by_one_round(old_results(tmp_path / "c", retention_days=11)) == 0


@reaches("storage.expire_batch")
def check_expire_batch(tmp_path, **_):
    assert expired_by_one_round(old_results(tmp_path / "a", retention_days=5, expire_batch=1)) == 1
    assert expired_by_one_round(old_results(tmp_path / "b", retention_days=5)) == 3


@reaches("storage.expire_every_s")
def check_expire_every_s(tmp_path, **_):
    from serve_app.storage import Database
    from serve_app.storage.lifecycle import ExpiryTimer
    from serve_app.storage.models import GlbFile

    def left_after(settings: StorageSettings, seconds: float) -> int:
        timer = ExpiryTimer.start(settings)
        db = Database(settings.database_url)
        try:
            deadline = time.monotonic() + seconds
            while True:
                with db.session() as session:
                    left = session.query(GlbFile).count()
                if left == 0 or time.monotonic() > deadline:
                    return left
                time.sleep(0.05)  # polling the database the timer's thread writes
        finally:
            timer.stop()
            db.dispose()

    assert left_after(old_results(tmp_path / "a", retention_days=5, expire_every_s=0.1), CLOSE_S) == 0
    assert left_after(old_results(tmp_path / "b", retention_days=5), QUIET_S) == 3


class RunnerDouble:
    """Runs as the stages would (a GLB stored per run); fails the first runs with `lost` when given."""

    def __init__(self, store, lost: int = 0) -> None:
        self.store, self.lost, self.runs = store, lost, 0

    async def run(self, upload):
        from serve_app.stages import Reconstruction

        self.runs += 1
        if self.runs <= self.lost:
            raise LostReplica()
        job = upload.job
        glb = b"glTF run %d" % self.runs
        stored = self.store.save(glb, job.user_id, job.original_name, source_digest=job.source_digest)
        return Reconstruction(glb=glb, hashed_name=stored.hashed_name)

    def is_replica_lost(self, exc: BaseException) -> bool:
        return isinstance(exc, LostReplica)


class LostReplica(Exception):
    pass


def backend_runs(tmp_path: Path, uploads: int = 1, lost: int = 0, sleeps: list | None = None, **sections):
    """Runs of the runner double behind a ServeBackend for `uploads` identical uploads."""
    from serve_app.serve_backend import ServeBackend
    from serve_app.storage import Database, GlbStore

    user = make_user(tmp_path, f"user{time.monotonic_ns()}")
    storage = {"database_url": f"sqlite:///{tmp_path / 'accounts.db'}", "storage_root": str(tmp_path)}
    # merged, not replaced: a `storage` section given here keeps the test's own database and root
    settings = AppSettings.from_dict({**sections, "storage": {**storage, **sections.get("storage", {})}})
    from serve_app.accounts import Accounts

    accounts = run(Accounts.open(settings))
    db = Database(settings.storage.database_url)
    runner = RunnerDouble(GlbStore(db, tmp_path), lost=lost)
    backend = ServeBackend(accounts, runner, settings)
    try:
        for _ in range(uploads):
            run(backend.reconstruct_images(user, [b"the same photo"]))
    finally:
        accounts.close()
        db.dispose()
    return runner.runs


@reaches("storage.reuse_results")
def check_reuse_results(tmp_path, **_):
    assert backend_runs(tmp_path, uploads=2) == 1
    assert backend_runs(tmp_path, uploads=2, storage={"reuse_results": False}) == 2


@pytest.fixture
def no_pauses(monkeypatch) -> list[float]:
    taken: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds, *args, **kwargs):
        taken.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return taken


@reaches("pipeline.attempts")
def check_attempts(tmp_path, no_pauses, **_):
    assert backend_runs(tmp_path, lost=1) == 2  # the default retries a lost replica
    with pytest.raises(LostReplica):
        backend_runs(tmp_path, lost=1, pipeline={"attempts": 1})


@reaches("pipeline.retry_delay_s")
def check_retry_delay_s(tmp_path, no_pauses, **_):
    backend_runs(tmp_path, lost=1, pipeline={"retry_delay_s": 7.5})
    backend_runs(tmp_path, lost=1)
    assert [s for s in no_pauses if s > 0] == [7.5, 1.0]


# == frames: the real decode stage ============================================
@lru_cache(maxsize=1)
def photos() -> tuple[bytes, ...]:
    from devkit import media

    return tuple(media.jpeg_bytes(media.textured_frame(i, blur=1.0, seed=i)) for i in range(3))  # 160x120


@pytest.fixture(scope="module")
def video_path(tmp_path_factory) -> Path:
    """3 s at 10 fps, 160x120; every frame stamped with its index, frames 5, 15, 25 sharp, the rest blurred."""
    from devkit import media

    frames = [media.stamp_index(media.textured_frame(i, blur=0.0 if i % 10 == 5 else 3.0, seed=1), i) for i in range(30)]
    return media.write_video(tmp_path_factory.mktemp("reach") / "clip.mp4", frames, fps=10)


def decode(frames_settings: dict, video: Path | None = None):
    from serve_app.stages import Job, Upload
    from serve_app.stages.decode import DecodeStage

    stage = DecodeStage(AppSettings(frames=FrameSettings(**frames_settings)))
    upload = Upload.from_video_file(Job(), video) if video else Upload(Job(), images=photos())
    return stage.run(upload).frames


def decode_error(frames_settings: dict, video: Path | None = None) -> str | None:
    from tcp_proxy.errors import ServiceError

    try:
        decode(frames_settings, video)
    except ServiceError as exc:
        return exc.code
    return None


@reaches("frames.max_images")
def check_max_images(**_):
    assert decode_error({"max_images": 2}) == "ERROR_TOO_MANY_IMAGES"
    assert decode_error({}) is None

    # and the protocol server the standalone proxy builds refuses the count as soon as it is read
    from argparse import Namespace

    from serve_app.standalone_proxy import open_server

    async def three_photos(settings: AppSettings):
        args = Namespace(host="127.0.0.1", port=0, share_port=False)
        server = await open_server(args, settings, FakeBackend(), None)
        try:
            return await upload_of(server, [b"one", b"two", b"three"])
        finally:
            await server.close()

    assert run(three_photos(AppSettings(frames=FrameSettings(max_images=2)))) == (b"", b"ERROR_TOO_MANY_IMAGES")
    assert run(three_photos(AppSettings()))[0].endswith(b".glb")


async def upload_of(server, images: list[bytes]) -> tuple[bytes, bytes]:
    reader, writer = await connect(server)
    await login(reader, writer)
    writer.write(frame(IMAGE, image_payload(images)))
    reply = await read_block(reader), await read_block(reader)
    writer.close()
    return reply


@reaches("frames.max_image_pixels")
def check_max_image_pixels(video_path, **_):
    assert decode_error({"max_image_pixels": 160 * 120 - 1}) == "ERROR_BAD_IMAGE"
    assert decode_error({"max_image_pixels": 160 * 120 - 1}, video_path) == "ERROR_TOO_MANY_PIXELS"
    assert decode_error({}) is None and decode_error({}, video_path) is None


@reaches("frames.max_request_pixels")
def check_max_request_pixels(**_):
    assert decode_error({"max_request_pixels": 3 * 160 * 120 - 1}) == "ERROR_TOO_MANY_PIXELS"
    assert decode_error({}) is None


@lru_cache(maxsize=1)
def large_photo() -> bytes:
    from devkit import media

    return media.jpeg_bytes(media.textured_scene(2000, 1500))


def decoded_large_photo(**frames_settings) -> np.ndarray:
    from serve_app.stages import Job, Upload
    from serve_app.stages.decode import DecodeStage

    stage = DecodeStage(AppSettings(frames=FrameSettings(**frames_settings)))
    return stage.run(Upload(Job(), images=(large_photo(),))).frames[0]


@reaches("frames.decode_max_pixels")
def check_decode_max_pixels(video_path, **_):
    assert {f.shape[:2] for f in decode({"decode_max_pixels": 80 * 60}, video_path)} == {(60, 80)}
    assert {f.shape[:2] for f in decode({}, video_path)} == {(120, 160)}
    # a photo is decoded at no more than this many pixels before it is resized for the model
    assert not np.array_equal(decoded_large_photo(decode_max_pixels=10_000), decoded_large_photo())


@reaches("frames.decode_oversample")
def check_decode_oversample(**_):
    # the photo is decoded at oversample x the model's size, then resized to the model's: the pixels differ
    assert not np.array_equal(decoded_large_photo(decode_oversample=1.0), decoded_large_photo())


@reaches("frames.decode_workers")
def check_decode_workers(monkeypatch, **_):
    # value in the decoder's call (how many photos decode at once cannot be told from the frames)
    import serve_app.frames.photos as photos_module

    calls: list[int] = []
    real = photos_module.map_in_order

    def recording(step, count, workers, *args, **kwargs):
        calls.append(workers)
        return real(step, count, workers, *args, **kwargs)

    monkeypatch.setattr(photos_module, "map_in_order", recording)
    decode({"decode_workers": 3})
    decode({})
    assert calls == [3, 0]


def sampled_indices(frames_settings: dict, video: Path) -> list[int]:
    from devkit import media

    return [media.read_index(f) for f in decode(frames_settings, video)]


@reaches("frames.fps")
def check_fps(video_path, **_):
    assert sampled_indices({"fps": 1.0}, video_path) == [0, 10, 20]
    assert len(sampled_indices({}, video_path)) < 3  # 0.4 per second of a 3 s video


@reaches("frames.max_frames")
def check_max_frames(video_path, **_):
    assert len(decode({"fps": 10.0, "max_frames": 5}, video_path)) == 5
    assert len(decode({"fps": 10.0}, video_path)) == 30


@reaches("frames.sharpest")
def check_sharpest(video_path, **_):
    assert sampled_indices({"fps": 1.0, "sharpest": True}, video_path) == [5, 15, 25]
    assert sampled_indices({"fps": 1.0}, video_path) == [0, 10, 20]


@reaches("frames.max_side")
def check_max_side(video_path, **_):
    assert {max(f.shape[:2]) for f in decode({"max_side": 80}, video_path)} == {80}
    assert {max(f.shape[:2]) for f in decode({}, video_path)} == {160}


@reaches("frames.max_decoded_frames")
def check_max_decoded_frames(video_path, **_):
    assert decode_error({"fps": 10.0, "max_decoded_frames": 10}, video_path) == "ERROR_TOO_MANY_FRAMES"
    assert decode_error({"fps": 10.0}, video_path) is None


@reaches("frames.max_decode_s")
def check_max_decode_s(video_path, **_):
    assert decode_error({"fps": 10.0, "max_decode_s": 1e-6}, video_path) == "ERROR_TOO_MANY_FRAMES"
    assert decode_error({"fps": 10.0}, video_path) is None


# == export: the real export stage ============================================
@lru_cache(maxsize=1)
def predictions_cached() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    s, h, w = 2, 8, 8
    images = rng.uniform(0.2, 0.8, (s, 3, h, w)).astype(np.float32)
    images[:, :, 0, :] = 0.0  # a black row
    images[:, :, 1, :] = 1.0  # a white row
    extrinsic = np.tile(np.eye(4, dtype=np.float32)[:3], (s, 1, 1))
    extrinsic[1, 2, 3] = 1.0
    return {
        "world_points": rng.normal(0, 1, (s, h, w, 3)).astype(np.float32),
        "world_points_conf": rng.uniform(1, 5, (s, h, w)).astype(np.float32),
        "world_points_from_depth": rng.normal(3, 1, (s, h, w, 3)).astype(np.float32),
        "depth_conf": rng.uniform(1, 5, (s, h, w)).astype(np.float32),
        "images": images,
        "extrinsic": extrinsic,
        "intrinsic": np.tile(np.eye(3, dtype=np.float32), (s, 1, 1)),
        "depth": np.ones((s, h, w, 1), np.float32),
        "pose_enc": np.zeros((s, 9), np.float32),
    }


def predictions() -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in predictions_cached().items()}


def exported(**options):
    """(GLB bytes, point count) from the export stage with these `export` settings."""
    from serve_app.stages import Job
    from serve_app.stages.export import ExportStage
    from serve_app.stages.messages import Predictions

    stage = ExportStage(AppSettings(export=ExportOptions(**options)))
    result = stage.run(Predictions(Job(), predictions(), frame_count=2))
    return result.glb, result.point_count


def differs(option: str, value, **base) -> None:
    """The GLB with `option` changed is not the GLB of `base` alone."""
    assert exported(**base, **{option: value})[0] != exported(**base)[0]


@reaches("export.conf_percentile")
def check_conf_percentile(**_):
    assert exported(conf_percentile=50.0)[1] < exported()[1]


@reaches("export.source")
def check_source(**_):
    differs("source", "depth")


@reaches("export.mask_black_bg")
def check_mask_black_bg(**_):
    assert exported(mask_black_bg=True)[1] < exported()[1]


@reaches("export.mask_white_bg")
def check_mask_white_bg(**_):
    assert exported(mask_white_bg=True)[1] < exported()[1]


@reaches("export.show_cameras")
def check_show_cameras(**_):
    assert len(exported(show_cameras=True)[0]) > len(exported()[0])


@reaches("export.frame")
def check_frame(**_):
    assert exported(frame=0)[1] < exported()[1]


@reaches("export.max_points")
def check_max_points(**_):
    assert exported(max_points=10)[1] == 10
    assert exported()[1] > 10


@reaches("export.downsample")
def check_downsample(**_):
    differs("downsample", "uniform", max_points=10)


@reaches("export.quantize")
def check_quantize(**_):
    assert len(exported(quantize=False)[0]) > len(exported()[0])


@reaches("export.center")
def check_center(**_):
    differs("center", False)


@reaches("export.mask_sky")
def check_mask_sky(**_):
    from serve_app.export.sky import SkySegmentationUnavailableError

    with pytest.raises(SkySegmentationUnavailableError):
        exported(mask_sky=True)
    exported()


@reaches("export.skyseg_model")
def check_skyseg_model(tmp_path, **_):
    from serve_app.export.sky import SkySegmentationUnavailableError

    missing = str(tmp_path / "elsewhere" / "skyseg.onnx")
    with pytest.raises(SkySegmentationUnavailableError, match="elsewhere"):
        exported(mask_sky=True, skyseg_model=missing)


# == model: the inference stage's runner ======================================
@lru_cache(maxsize=8)
def inference_stage(**model):
    from serve_app.stages.inference import InferenceStage

    return InferenceStage(AppSettings(model=ModelSettings(**model)))


TINY = {"preset": "tiny", "device": "cpu"}
CHANGED = {**TINY, "seed": 1, "head_chunk_frames": 3, "preprocess_mode": "pad", "weights_bf16": True}


@reaches("model.checkpoint")
def check_checkpoint(tmp_path, **_):
    # the trained preset reads its checkpoint from this path (loading real weights is too heavy here)
    stage = inference_stage(checkpoint=str(tmp_path / "nowhere" / "model.pt"), device="cpu")
    assert stage.runner is None and "nowhere" in stage.error.message


@reaches("model.preset")
def check_preset(tmp_path, **_):
    assert inference_stage(**TINY).runner is not None  # built from a seed, no checkpoint read
    assert inference_stage(preset="vggt-1b", checkpoint=str(tmp_path / "x.pt"), device="cpu").runner is None


@reaches("model.device")
def check_device(**_):
    import torch

    if torch.cuda.is_available():
        pytest.skip("the check needs a machine without a GPU")
    assert inference_stage(preset="tiny", device="cuda").runner is None  # refused: no GPU here
    assert inference_stage(**TINY).runner.device.type == "cpu"


@reaches("model.weights_bf16")
def check_weights_bf16(**_):
    # bf16 weights only apply on a GPU: the value is checked in the runner's settings
    assert inference_stage(**CHANGED).runner.settings.weights_bf16 is True
    assert inference_stage(**TINY).runner.settings.weights_bf16 is False


@reaches("model.head_chunk_frames")
def check_head_chunk_frames(**_):
    # value in the built model's config (it changes only memory use, not the result)
    assert inference_stage(**CHANGED).runner.config.head_chunk_frames == 3
    assert inference_stage(**TINY).runner.config.head_chunk_frames == 8


@reaches("model.preprocess_mode")
def check_preprocess_mode(**_):
    # the runner preprocesses with it (value in its settings: a forward pass is too slow here) ...
    assert inference_stage(**CHANGED).runner.settings.preprocess_mode == "pad"
    assert inference_stage(**TINY).runner.settings.preprocess_mode == "crop"
    # ... and the decode stage reduces photos to what that preprocessing keeps: a portrait photo keeps
    # 518 px across for crop, 518 px of height for pad
    from devkit import media
    from serve_app.stages import Job, Upload
    from serve_app.stages.decode import DecodeStage

    portrait = media.jpeg_bytes(media.textured_scene(1000, 2000))

    def kept_shape(mode: str) -> tuple[int, ...]:
        stage = DecodeStage(AppSettings(model=ModelSettings(preprocess_mode=mode)))
        return stage.run(Upload(Job(), images=(portrait,))).frames[0].shape[:2]

    assert max(kept_shape("pad")) == 518
    assert min(kept_shape("crop")) == 518


@reaches("model.seed")
def check_seed(**_):
    first = next(inference_stage(**TINY).runner.model.parameters())
    other = next(inference_stage(**CHANGED).runner.model.parameters())
    assert not bool((first == other).all())


@reaches("model.torch_threads")
def check_torch_threads(**_):
    import torch

    from serve_app.stages.inference import InferenceStage

    runner = inference_stage(**TINY).runner
    before = torch.get_num_threads()
    try:
        InferenceStage(AppSettings(model=ModelSettings(**TINY)), runner=runner)._apply_torch_threads()
        assert torch.get_num_threads() == before  # the default leaves torch's own
        threads = 2 if before == 1 else 1
        InferenceStage(AppSettings(model=ModelSettings(**TINY, torch_threads=threads)), runner=runner)._apply_torch_threads()
        assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)


# == share ====================================================================
@reaches("share.viewer_dir")
def check_viewer_dir(tmp_path, **_):
    from serve_app.http.share_pages import SharePages

    build = tmp_path / "three" / "build"
    build.mkdir(parents=True)
    (build / "three.module.js").write_text("export const REACH = 1;\n")
    settings = AppSettings.from_dict(
        {
            "storage": {"database_url": f"sqlite:///{tmp_path / 'share.db'}", "storage_root": str(tmp_path)},
            "share": {"viewer_dir": str(tmp_path / "three")},
        }
    )
    pages = SharePages(settings)
    assert pages.viewer_file("build/three.module.js").status_code == 200
    pages.close()
    default = SharePages(dataclasses.replace(settings, share=dataclasses.replace(settings.share, viewer_dir="")))
    assert default.viewer_dir != pages.viewer_dir
    default.close()


# == web: the browser API (serve_app.http.api, Accounts' web sessions) ========
def web_settings(tmp_path, **web) -> AppSettings:
    storage = {"database_url": f"sqlite:///{tmp_path / 'web.db'}", "storage_root": str(tmp_path)}
    return AppSettings.from_dict({"storage": storage, "web": web})


@reaches("web.session_ttl_s")
def check_web_session_ttl_s(tmp_path, **_):
    from serve_app.accounts import Accounts

    # read in the built session store: a login would take a scrypt check for nothing more
    assert Accounts(web_settings(tmp_path, session_ttl_s=5.0))._web_sessions.ttl_s == 5.0
    assert Accounts(web_settings(tmp_path))._web_sessions.ttl_s == 7 * 86400.0


@reaches("web.events_max_s")
def check_web_events_max_s(tmp_path, **_):
    from serve_app.http.api import WebApi

    async def call(*_args):
        return {}

    # read in the built API: a stream's lifetime needs a job running for as long
    assert WebApi(web_settings(tmp_path, events_max_s=2.0), call)._events_max_s == 2.0
    assert WebApi(web_settings(tmp_path), call)._events_max_s == 300.0


@reaches("web.trusted_proxies")
def check_web_trusted_proxies(tmp_path, **_):
    from starlette.requests import Request

    from serve_app.http.api import WebApi

    async def call(*_args):
        return {}

    scope = {"type": "http", "scheme": "http", "client": ("10.1.2.3", 5000), "path": "/api/login",
             "headers": [(b"x-forwarded-proto", b"https")]}
    assert WebApi(web_settings(tmp_path, trusted_proxies="10.0.0.0/8"), call)._secure(Request(scope))
    assert not WebApi(web_settings(tmp_path), call)._secure(Request(scope))


# == health: the readiness checks of /readyz (serve_app.http.health) ==========
@reaches("health.check_timeout_s")
def check_health_check_timeout_s(tmp_path, **_):
    from serve_app.http.health import ServiceReadiness

    async def slow_listener() -> dict:
        await asyncio.sleep(0.5)  # the slowness under test: over the changed limit, well under the default
        return {"listening": True, "port": 4567}

    async def model_status() -> dict:
        return {"loaded": True, "preset": "tiny", "device": "cpu"}

    def listener_check(**health) -> dict:
        storage = {"database_url": f"sqlite:///{tmp_path / 'health.db'}", "storage_root": str(tmp_path)}
        settings = AppSettings.from_dict({"storage": storage, "health": health})
        _, body = asyncio.run(ServiceReadiness(settings, slow_listener, model_status)())
        return body["checks"]["tcp_listener"]

    assert listener_check(check_timeout_s=0.1)["detail"] == "no answer within 0.1 s"
    assert listener_check()["ok"]  # the default 2 s waits for it


# == the checks, one test per setting =========================================
@pytest.mark.parametrize("setting", sorted(set(every_setting()) | set(REACH)))
def test_the_setting_changes_what_its_consumer_does(setting, request, tmp_path, monkeypatch):
    check = REACH.get(setting)
    assert check is not None, f"{setting} has no entry in REACH: add a check showing its consumer reacts to it"
    fixtures = {"tmp_path": tmp_path, "monkeypatch": monkeypatch}
    for name in ("certificates", "video_path", "no_pauses"):
        if name in check.__code__.co_varnames[: check.__code__.co_argcount + check.__code__.co_kwonlyargcount]:
            fixtures[name] = request.getfixturevalue(name)
    check(**fixtures)
