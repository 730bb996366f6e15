"""The running service over real sockets: the wire protocol end to end.

Every test speaks docs/PROTOCOL.md from a plain socket (`integration_wire.Conn`)
to the app deployed by the `service` fixture (tiny untrained model on CPU).
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import socket
import struct
import threading
import time
import urllib.request

import pytest
from front_door_clients import wait_until
from service_users import (
    ACCOUNT_RECHECK_S,
    DISABLED_USER,
    MAX_PAYLOAD,
    PASSWORD,
    READ_TIMEOUT_S,
    SESSION_TTL_S,
    SMALL_FRAME_TIMEOUT_S,
)
from wire_client import IMAGE, LOGIN, VIDEO, Conn, frame, fresh_address, images_payload

pytestmark = pytest.mark.timeout(900)

HASH_NAME = re.compile(r"^[0-9a-f]{64}\.glb$")


def _load_glb(data: bytes):
    import trimesh

    scene = trimesh.load(io.BytesIO(data), file_type="glb")
    geometries = list(scene.geometry.values()) if hasattr(scene, "geometry") else [scene]
    assert geometries and sum(len(g.vertices) for g in geometries) > 0
    return scene


def _check_stored(service, reply, username: str | None = None) -> str:
    """The reply is a stored GLB: name, loadable bytes, row, file with the same bytes."""
    assert reply.error is None, reply.data[:100]
    assert HASH_NAME.match(reply.name), reply.name
    _load_glb(reply.data)
    hashed = reply.name[:-4]
    row = service.row(hashed)
    assert row is not None
    assert row.file_size == len(reply.data)
    path = service.storage_root / row.file_path
    assert path.is_file() and path.read_bytes() == reply.data
    return hashed


def _unique(jpeg: bytes, tag: str) -> bytes:
    """The same photo as a different upload: decoders ignore bytes after a JPEG's end marker."""
    return jpeg + tag.encode()


def _spool_files(service) -> list[str]:
    """Upload files in the spool dir (the server keeps them in a folder of its own there)."""
    return sorted(str(p) for p in service.spool_dir.rglob("*") if p.is_file())


# --- LOGIN ----------------------------------------------------------------------------


def test_login_ok_vip_and_failures(service):
    with Conn(service.port) as c:
        assert c.login("alice", PASSWORD)[:2] == [True, False]
        assert c.login("vip", PASSWORD)[:2] == [True, True]  # many requests on one connection
    with Conn(service.port) as c:
        assert c.login("alice", "wrong")[:2] == [False, False]
        assert c.login("nobody", PASSWORD)[:2] == [False, False]
        assert c.login(DISABLED_USER, PASSWORD)[:2] == [False, False]
        c.send(frame(LOGIN, b"{not json"))
        assert json.loads(c.read_block())[:2] == [False, False]
        c.send(frame(LOGIN, json.dumps({"u": "alice"}).encode()))
        assert json.loads(c.read_block())[:2] == [False, False]


# --- IMAGE / VIDEO / GET_GLB ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_images_to_glb_and_get_back(service, jpegs, pngs, kind):
    images = jpegs if kind == "jpeg" else pngs
    with Conn(service.port) as c:
        assert c.login("alice", PASSWORD)[0] is True
        reply = c.images(images)
        hashed = _check_stored(service, reply)
        assert c.get_glb(hashed) == reply.data  # same connection
    with Conn(service.port) as other:  # anyone with the hash, no login
        assert other.get_glb(f"  {hashed}.glb\n") == reply.data


def test_video_to_glb_for_vip(service, video_bytes):
    with Conn(service.port) as c:
        assert c.login("vip", PASSWORD)[:2] == [True, True]
        reply = c.video(video_bytes)
        hashed = _check_stored(service, reply)
    with Conn(service.port) as other:
        assert other.get_glb(hashed) == reply.data
    assert _spool_files(service) == []


def test_video_refused_for_non_vip(service, video_bytes):
    with Conn(service.port) as c:
        assert c.login("alice", PASSWORD)[:2] == [True, False]
        assert c.video(video_bytes).error == "ERROR_VIP_REQUIRED"
        assert c.login("alice", PASSWORD)[0] is True  # the connection stays usable


def test_the_same_upload_again_answers_the_stored_result(service, jpegs):
    photos = [_unique(jpegs[0], "cached"), jpegs[2]]
    with Conn(service.port) as c:
        assert c.login("alice", PASSWORD)[0] is True
        first = c.images(photos)
        hashed = _check_stored(service, first)
        rows_after_first = service.stored()[0]
        again = c.images(photos)
        assert (again.name, again.data) == (first.name, first.data)  # same share hash, same bytes
        assert service.stored()[0] == rows_after_first  # no new row, no new file
        other_order = c.images(photos[::-1])
        assert other_order.error is None and other_order.name != first.name  # another upload: computed
    timings = service.handle.recent_requests.remote().result()[-2]["timings"]
    assert "cache" in timings and "inference" not in timings
    with Conn(service.port) as c:  # another user with the same photos gets a result of their own
        assert c.login("vip", PASSWORD)[0] is True
        theirs = c.images(photos)
        assert _check_stored(service, theirs) != hashed
    row = service.row(hashed)
    (service.storage_root / row.file_path).unlink()  # a stored result whose file is gone is computed again
    with Conn(service.port) as c:
        assert c.login("alice", PASSWORD)[0] is True
        recomputed = c.images(photos)
        assert _check_stored(service, recomputed) != hashed


def test_get_glb_bad_and_unknown_hash(service):
    with Conn(service.port) as c:
        assert c.get_glb("not a hash") == b"ERROR_INVALID_HASH"
        assert c.get_glb("../../etc/passwd") == b"ERROR_INVALID_HASH"
        assert c.get_glb("0" * 64) == b"ERROR_HASH_NOT_FOUND"


def test_get_glb_never_serves_the_database(service):
    """A row pointing inside the storage root but not at a GLB under out/ (here: the database) is refused."""
    from sqlalchemy import text

    from serve_app.storage.database import Database

    service.storage_root.mkdir(parents=True, exist_ok=True)
    db_file = service.storage_root / "copy-of-the-database.db"
    db_file.write_bytes(b"SQLite format 3\x00 users and password hashes")
    hashed = "d" * 64
    db = Database(service.database_url)
    try:
        with db.engine.begin() as connection:
            connection.execute(
                text("INSERT INTO glb_files (hashed_name, file_path, user_id) VALUES (:h, :p, NULL)"),
                {"h": hashed, "p": db_file.name},
            )
    finally:
        db.dispose()
    with Conn(service.port) as c:
        assert c.get_glb(hashed) == b"ERROR_FILE_MISSING"


def test_login_with_a_lone_surrogate_is_a_failure_the_throttle_counts(service):
    with Conn(service.port) as c:
        for _ in range(5):  # auth.max_failures
            c.send(frame(LOGIN, b'{"u": "\\ud800", "p": "x"}'))
            assert json.loads(c.read_block())[:2] == [False, False]
        assert c.login("alice", PASSWORD)[:2] == [False, False]  # this address is now throttled, even for alice
    with Conn(service.port) as other:
        assert other.login("alice", PASSWORD)[0] is True  # other addresses and the user are fine


def test_get_glb_file_missing(service, jpegs):
    with Conn(service.port) as c:
        assert c.login("carol", PASSWORD)[0] is True
        hashed = _check_stored(service, c.images(jpegs[:2]))
    row = service.row(hashed)
    (service.storage_root / row.file_path).unlink()
    with Conn(service.port) as c:
        assert c.get_glb(hashed) == b"ERROR_FILE_MISSING"


def test_undecodable_images(service, jpegs):
    before = service.stored()
    with Conn(service.port) as c:
        assert c.login("alice", PASSWORD)[0] is True
        assert c.images([jpegs[0], b"this is not an image"]).error == "ERROR_BAD_IMAGE"
        assert c.images([]).error == "ERROR_NO_FRAMES"  # no image at all
    assert service.stored() == before


def test_unreadable_video(service, jpegs):
    before = service.stored()
    with Conn(service.port) as c:
        assert c.login("vip", PASSWORD)[0] is True
        assert c.video(b"\x00\x00\x00\x18ftypmp42" + os.urandom(5000)).error == "ERROR_NO_FRAMES"
        assert c.video(b"").error == "ERROR_NO_FRAMES"  # empty
        assert c.video(jpegs[0]).error == "ERROR_NO_FRAMES"  # a still image
    assert service.stored() == before
    assert _spool_files(service) == []


# --- sessions -------------------------------------------------------------------------


def test_upload_without_login(service, jpegs):
    with Conn(service.port) as c:  # a fresh address: no IP session
        assert c.images(jpegs).error == "ERROR_NOT_LOGGED_IN"
        c.send(frame(VIDEO, b"x" * 1000))
        assert c.read_reconstruction().error == "ERROR_NOT_LOGGED_IN"


def test_login_then_upload_on_a_new_connection(service, jpegs):
    with Conn(service.port) as first:
        assert first.login("alice", PASSWORD)[0] is True
        address = first.source
    with Conn(service.port, source=address) as second:  # the Android app reconnects per request
        _check_stored(service, second.images(jpegs[:2]))
    with Conn(service.port) as stranger:  # another address is not logged in
        assert stranger.images(jpegs[:2]).error == "ERROR_NOT_LOGGED_IN"


def test_failed_login_keeps_the_binding(service, jpegs):
    with Conn(service.port) as first:
        assert first.login("alice", PASSWORD)[0] is True
        address = first.source
    with Conn(service.port, source=address) as second:
        assert second.login("alice", "wrong")[:2] == [False, False]
    with Conn(service.port, source=address) as third:
        _check_stored(service, third.images(jpegs[:2]))


def test_a_result_whose_reply_was_lost_is_found_with_list(service, jpegs):
    """The phone lost its connection during the reconstruction: LIST, then GET_GLB, recover it."""
    with Conn(service.port) as c:
        assert c.list() == b"ERROR_NOT_LOGGED_IN"
        assert c.login("carol", PASSWORD)[0] is True
        before = {entry["hash"] for entry in c.list()}
        with Conn(service.port, source=c.source) as gone:
            gone.send(frame(IMAGE, images_payload([_unique(jpegs[0], "lost reply"), jpegs[1]])))  # and hang up
        deadline = time.monotonic() + 120
        while True:
            listed = c.list()  # the connection's own login: no session expiry
            new = [entry for entry in listed if entry["hash"] not in before]
            if new or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert len(new) == 1 and new == listed[:1], listed  # newest first
    entry = new[0]
    assert entry["original_name"] == "images:2" and entry["created_at"].endswith("Z")
    with Conn(service.port) as anyone:
        glb = anyone.get_glb(entry["hash"])
    assert glb[:4] == b"glTF" and len(glb) == entry["file_size"]
    assert entry["hash"] in service.stored()[0]


def test_expired_session(service, jpegs):
    with Conn(service.port) as first:
        assert first.login("alice", PASSWORD)[0] is True
        address = first.source
    time.sleep(SESSION_TTL_S + 0.5)
    with Conn(service.port, source=address) as later:
        assert later.images(jpegs[:2]).error == "ERROR_NOT_LOGGED_IN"


def test_a_session_follows_the_account_revoked_after_login(service, jpegs):
    """An administrator removes VIP and then disables the account: the address bound at LOGIN
    (and the connection's own login) act as the account as it is now, within the recheck time."""
    from serve_app.config import AuthSettings
    from serve_app.storage import Database, UserStore

    db = Database(service.database_url)
    users = UserStore(db, AuthSettings())
    try:
        users.create("erin", PASSWORD, is_vip=True)
        with Conn(service.port) as own:
            assert own.login("erin", PASSWORD) == [True, True]
            address = own.source
            users.set_vip("erin", False)
            time.sleep(ACCOUNT_RECHECK_S + 0.2)
            own.send(frame(VIDEO, b"x" * 1000))
            assert own.read_reconstruction().error == "ERROR_VIP_REQUIRED"
        with Conn(service.port, source=address) as bound:
            bound.send(frame(VIDEO, b"x" * 1000))
            assert bound.read_reconstruction().error == "ERROR_VIP_REQUIRED"
        users.set_status("erin", False)
        time.sleep(ACCOUNT_RECHECK_S + 0.2)
        with Conn(service.port, source=address) as bound:
            assert bound.images(jpegs[:2]).error == "ERROR_NOT_LOGGED_IN"
    finally:
        db.dispose()


def test_sessions_are_kept_in_the_database(service):
    """The binding a LOGIN makes is a row of the service's database (so a restarted or another
    ingress replica sees it), ending session_ttl_s after the LOGIN."""
    from sqlalchemy import text

    from serve_app.storage import Database

    with Conn(service.port) as c:
        before = time.time()
        assert c.login("alice", PASSWORD)[0] is True
        address = c.source
    db = Database(service.database_url)
    try:
        with db.session() as session:
            row = session.execute(
                text("SELECT created_at, expires_at FROM address_sessions WHERE address = :a"), {"a": address}
            ).one()
    finally:
        db.dispose()
    assert before - 1 <= row.created_at <= time.time()
    assert row.expires_at == pytest.approx(row.created_at + SESSION_TTL_S)


def test_access_lines_and_refused_logins_reach_the_replica_log(service):
    """The service's loggers go through Serve's replica logging: one access line per request
    and the refused login, in the TCPIngress replica's log file (and `serve run`'s output)."""
    import glob
    import uuid

    import ray

    name = f"nobody-{uuid.uuid4().hex[:8]}"
    with Conn(service.port) as c:
        assert c.login(name, "guess")[:2] == [False, False]
        peer = c.source
    logs = os.path.join(ray._private.worker._global_node.get_logs_dir_path(), "serve")
    pattern = os.path.join(logs, f"replica_{service.name}_TCPIngress_*.log")
    deadline = time.monotonic() + 15
    while True:
        text = "".join(open(path, errors="replace").read() for path in glob.glob(pattern))
        access = [line for line in text.splitlines() if f"user={name}" in line and "command=LOGIN" in line]
        refused = [line for line in text.splitlines() if "login refused" in line and name in line]
        if (access and refused) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(access) == 1, glob.glob(pattern)
    assert f"peer={peer}" in access[0] and "outcome=LOGIN_FAILED" in access[0]
    assert len(refused) == 1 and "unknown user" in refused[0]


# --- malformed and hostile traffic ----------------------------------------------------


def test_unknown_command(service):
    with Conn(service.port) as c:
        c.send(frame(9, b"abc"))
        assert c.read_block() == b"UNKNOWN_COMMAND"
        assert c.login("alice", PASSWORD)[0] is True  # still in step


def test_payload_over_the_limit(service):
    with Conn(service.port) as c:
        assert c.login("alice", PASSWORD)[0] is True
        c.send(struct.pack(">BI", IMAGE, MAX_PAYLOAD + 1) + b"\x00" * 1000)
        assert c.read_reconstruction().error == "ERROR_PAYLOAD_TOO_LARGE"
        assert c.at_eof()


def test_an_over_limit_upload_written_whole_before_reading_still_gets_its_code(service):
    """The Android app writes its whole body, then reads. Written slowly (longer than the 2 s
    linger after an error), every write still succeeds and the error code arrives."""
    body = b"\x00" * (MAX_PAYLOAD + 1024 * 1024)
    with Conn(service.port) as c:
        assert c.login("alice", PASSWORD)[0] is True
        c.send(struct.pack(">BI", IMAGE, len(body)))
        for start in range(0, len(body), 1024 * 1024):  # ~9 MiB over ~3.6 s
            c.send(body[start : start + 1024 * 1024])
            time.sleep(0.4)
        assert c.read_reconstruction().error == "ERROR_PAYLOAD_TOO_LARGE"
        assert c.at_eof()


def test_truncated_payload_leaves_nothing_behind(service, jpegs, video_bytes):
    before = service.stored()
    with Conn(service.port) as c:
        assert c.login("vip", PASSWORD)[0] is True
        payload = images_payload(jpegs)
        c.send(struct.pack(">BI", IMAGE, len(payload)) + payload[: len(payload) // 2])
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_reconstruction().error == "ERROR_INCOMPLETE_REQUEST"
        assert c.at_eof()
    with Conn(service.port) as c:
        assert c.login("vip", PASSWORD)[0] is True
        c.send(struct.pack(">BI", VIDEO, len(video_bytes)) + video_bytes[: len(video_bytes) // 2])
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_reconstruction().error == "ERROR_INCOMPLETE_REQUEST"
        assert c.at_eof()
    wait_until(lambda: _spool_files(service) == [], "the truncated uploads' spool files removed", timeout_s=60)
    assert service.stored() == before


def test_garbage_bytes(service):
    import random

    rng = random.Random(1234)
    for _ in range(3):
        with Conn(service.port) as c:
            c.send(bytes(rng.randrange(256) for _ in range(4096)))
            c.sock.shutdown(socket.SHUT_WR)
            assert c.at_eof(timeout=READ_TIMEOUT_S + 10)
    with Conn(service.port) as c:  # the server is unharmed
        assert c.login("alice", PASSWORD)[0] is True


def test_slow_sender_is_served(service, jpegs):
    """Bytes that trickle in, each gap shorter than the read timeout, make a valid request."""
    with Conn(service.port) as c:
        assert c.login("alice", PASSWORD)[0] is True
        data = frame(IMAGE, images_payload(jpegs[:2]))
        pieces = 6
        step = len(data) // pieces + 1
        started = time.monotonic()
        for i in range(0, len(data), step):
            c.send(data[i : i + step])
            time.sleep(READ_TIMEOUT_S / 4)
        assert time.monotonic() - started > READ_TIMEOUT_S  # slower than the timeout overall
        _check_stored(service, c.read_reconstruction())


def test_dribbled_logins_are_cut_off_while_a_real_login_is_answered(service):
    """A slowloris: LOGIN frames sent one byte every 0.3 s (never silent for read_timeout_s) are
    answered [false,false] (ERROR_READ_TIMEOUT) small_frame_timeout_s after their first byte, before
    the frame is complete, and closed; a real LOGIN from elsewhere meanwhile is not queued behind them."""
    login = frame(LOGIN, json.dumps({"u": "alice", "p": PASSWORD}).encode())
    answers: list = []
    started_dribbling = [threading.Event() for _ in range(5)]
    source = fresh_address()

    def dribble(started_event: threading.Event) -> None:
        with Conn(service.port, source=source, timeout=30) as c:
            started, sent = time.monotonic(), 0
            for byte in login:  # the client's pace; the reply (readable) ends it
                try:
                    c.send(bytes([byte]))
                except OSError:
                    break  # cut off: the reply is waiting
                sent += 1
                started_event.set()
                if select.select([c.sock], [], [], 0.3)[0]:
                    break
            answered_s = time.monotonic() - started
            answers.append((c.read_block(), answered_s, sent))

    def timed_login(username: str) -> float:
        with Conn(service.port) as real:
            started = time.monotonic()
            assert real.login(username, PASSWORD)[:2] == [True, False]
            return time.monotonic() - started

    unloaded_s = timed_login("carol")
    threads = [threading.Thread(target=dribble, args=(event,)) for event in started_dribbling]
    for t in threads:
        t.start()
    for event in started_dribbling:
        assert event.wait(60), "a dribbler never sent its first byte"
    loaded_s = timed_login("carol")
    # queued behind the dribblers it would wait for their cut-off: about SMALL_FRAME_TIMEOUT_S more
    assert loaded_s < unloaded_s + SMALL_FRAME_TIMEOUT_S / 2, (loaded_s, unloaded_s)
    for t in threads:
        t.join(120)
    assert len(answers) == 5
    for reply, seconds, sent in answers:
        assert json.loads(reply) == [False, False]
        assert sent < len(login), "answered only once the frame was complete"
        assert seconds >= SMALL_FRAME_TIMEOUT_S  # counted from the first byte, sent after `started`


def test_stalled_sender_times_out_alone(service, jpegs):
    with Conn(service.port) as stalled, Conn(service.port) as other:
        assert stalled.login("alice", PASSWORD)[0] is True
        payload = images_payload(jpegs)
        stalled.send(struct.pack(">BI", IMAGE, len(payload)) + payload[:100])
        started = time.monotonic()
        assert other.login("vip", PASSWORD)[0] is True  # not blocked by the stalled one
        reply = stalled.read_reconstruction()
        assert reply.error == "ERROR_READ_TIMEOUT"
        assert READ_TIMEOUT_S - 0.5 <= time.monotonic() - started <= READ_TIMEOUT_S + 10
        assert stalled.at_eof()


def test_twenty_concurrent_clients(service, jpegs):
    results: list = [None] * 20
    errors: list = []

    def client(i: int) -> None:
        try:
            with Conn(service.port, timeout=600) as c:
                assert c.login("alice" if i % 2 else "vip", PASSWORD)[0] is True
                reply = c.images([_unique(jpegs[i % 3], f"concurrent {i}"), jpegs[(i + 1) % 3]])
                assert reply.error is None, reply.data[:60]
                assert HASH_NAME.match(reply.name)
                assert c.get_glb(reply.name) == reply.data
                results[i] = reply.name
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((i, repr(exc)))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors, errors
    assert len(set(results)) == 20  # each stored under its own hash
    rows, files = service.stored()
    assert {name[:-4] for name in results} <= rows & files
    print(f"20 concurrent reconstructions in {time.monotonic() - started:.1f} s")


# --- Serve plumbing -------------------------------------------------------------------


def test_service_errors_survive_handles(service):
    """A ServiceError raised in a replica reaches the caller as itself (via Ray's wrapping)."""
    from ray import serve

    from serve_app.deployments.stage_runner import unwrap_service_error
    from serve_app.stages import Job, Upload
    from tcp_proxy.errors import BadImageError, ServiceError

    handle = serve.get_deployment_handle("FrameExtractor", service.name)
    with pytest.raises(ServiceError) as caught:
        handle.run.remote(Upload(Job(), images=(b"junk",))).result()
    assert caught.value.code == "ERROR_BAD_IMAGE"
    plain = unwrap_service_error(caught.value)
    assert type(plain) is BadImageError and plain.code == "ERROR_BAD_IMAGE" and plain.message


def test_status_and_standalone_backend(service, jpegs):
    """The ingress reports itself; a ServeBackend of its own (the standalone proxy's) drives the same app."""
    import asyncio

    from serve_app.config import AppSettings
    from serve_app.standalone_proxy import open_backend

    status = service.handle.status.remote().result()
    assert status["port"] == service.port
    assert status["model"]["loaded"] is True and status["model"]["device"] == "cpu"

    async def run():
        storage = {"database_url": service.database_url, "storage_root": str(service.storage_root)}
        settings = AppSettings.from_dict({"storage": storage})
        backend, accounts = await open_backend(service.name, settings)
        user = await backend.login("alice", PASSWORD, "198.51.100.7")
        assert user is not None and user.username == "alice"
        assert await backend.login("alice", "nope", "198.51.100.7") is None
        result = await backend.reconstruct_images(user, jpegs[:2])
        assert HASH_NAME.match(result.name)
        assert list(result.timings) == ["decode", "inference", "export", "pipeline"]
        assert result.frame_count == 2 and result.point_count > 0
        download = await backend.open_glb(result.name)
        try:
            assert download.size == len(result.glb) and await download.read(download.size) == result.glb
        finally:
            await download.close()
        from tcp_proxy.errors import HashNotFoundError

        with pytest.raises(HashNotFoundError):
            await backend.open_glb("1" * 64)
        accounts.close()

    asyncio.run(run())


def test_custom_metrics_are_exported(service, jpegs):
    """The custom metrics reach the node's Prometheus endpoint (what the dashboard reads)."""
    import ray

    with Conn(service.port) as c:
        assert c.login("alice", PASSWORD)[0] is True
        assert c.images(jpegs[:2]).error is None
    node = next(n for n in ray.nodes() if n["Alive"])
    url = f"http://{node['NodeManagerAddress']}:{node['MetricsExportPort']}/metrics"
    wanted = [
        "ray_vggt_requests_total",
        "ray_vggt_request_duration_seconds_bucket",
        "ray_vggt_stage_duration_seconds_bucket",
        "ray_vggt_frames_per_request_bucket",
        "ray_vggt_received_bytes_total",
        "ray_vggt_sent_bytes_total",
        "ray_vggt_model_loaded",
        "ray_vggt_result_cache_lookups_total",
        "ray_vggt_open_connections",
        "ray_vggt_pending_reconstructions",
    ]
    image_ok = re.compile(r'ray_vggt_requests_total\{(?=[^}]*command="IMAGE")(?=[^}]*outcome="OK")[^}]*\}')

    def complete(text: str) -> bool:
        stages = all(f'stage="{stage}"' in text for stage in ("decode", "inference", "export"))
        return all(name in text for name in wanted) and stages and bool(image_ok.search(text))

    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        if complete(text):
            break
        time.sleep(2)
    missing = [name for name in wanted if name not in text]
    assert not missing, missing
    assert complete(text), "\n".join(line for line in text.splitlines() if "vggt" in line)


# --- no checkpoint --------------------------------------------------------------------


def test_without_checkpoint_login_and_get_work_reconstructions_refused(service_without_model, jpegs, video_bytes):
    svc = service_without_model
    from serve_app.config import AuthSettings
    from serve_app.storage import Database, GlbStore, UserStore

    db = Database(svc.database_url)
    try:
        stored = GlbStore(db, svc.storage_root).save(b"glTF-placeholder", UserStore(db, AuthSettings()).get("vip").id, "x")
    finally:
        db.dispose()
    with Conn(svc.port) as c:
        assert c.login("vip", PASSWORD)[:2] == [True, True]
        assert c.images(jpegs[:2]).error == "ERROR_MODEL_NOT_LOADED"
        assert c.video(video_bytes).error == "ERROR_MODEL_NOT_LOADED"
        assert c.get_glb(stored.hashed_name) == b"glTF-placeholder"
        assert c.get_glb("0" * 64) == b"ERROR_HASH_NOT_FOUND"
    status = svc.handle.status.remote().result()
    assert status["model"]["loaded"] is False
    assert "fetch_weights" in status["model"]["error"] or "not found" in status["model"]["error"]
    assert _spool_files(svc) == []
