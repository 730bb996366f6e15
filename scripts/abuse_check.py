#!/usr/bin/env python
"""Attack scenarios against a running service on loopback: measured figures against goals.

    .venv/bin/python scripts/abuse_check.py --start-dev
    .venv/bin/python scripts/abuse_check.py --port 4567 --config config/serve.yaml --scenarios 1,4

Loopback only: `--host` must be a loopback address. Every scenario connects
from loopback source addresses of its own (127.0.9.x .. 127.0.12.x), so the
service's per-address limits and address bindings see distinct clients, and
each is bounded in time and in connections:

1. Slow connections: `--slow-connections` (320) connections from the 8
   addresses 127.0.9.1-8 each send a LOGIN header declaring a 60000-byte
   payload, then one byte every 2 s; one the server cuts off reconnects
   (after 0.5 s), for `--slow-seconds` (30). Meanwhile a legitimate client
   (127.0.9.200) LOGINs on a new connection every 2 s. Measured: its LOGIN
   latency p50/max (and p50 of 3 LOGINs before the attack: the service's own
   LOGIN time, mostly the password hash) and how many were answered
   `[true, ...]`; how long the server let a slow connection live. Goal:
   every legitimate LOGIN under attack answered `[true, ...]` in under 1 s.
2. Stalled uploads: 20 connections (127.0.10.1-20), each logged in as a user
   of its own (so the per-user cap admits them all), send an IMAGE header
   declaring 100 MB and 64 KiB of its payload, then nothing for
   `--hold-seconds` (15). Measured: RSS growth of the TCPIngress replica
   (peak minus before, sampled every 0.2 s) from the first IMAGE header on;
   the growth during the 20 LOGINs before is shown beside. Goal: under 64 MiB.
3. Slow GET_GLB readers: a 100 MB GLB planted in the service's storage
   (GlbStore.save); 10 connections (127.0.11.1-10, 4 KiB receive buffers)
   request it and read nothing (or `--reader-rate` bytes/s) for
   `--hold-seconds`, while a normal client (127.0.11.200) fetches a small
   planted GLB. Measured: ingress RSS growth; the small GET_GLB's latency.
   Goals: under 64 MiB; the small GLB arrives intact.
4. Revocation: a user LOGINs from 127.0.12.1 (address binding) and is then
   disabled in the database (UserStore.set_status); an IMAGE header from
   that address, on a connection without LOGIN, is sent every 0.25 s until
   it is refused ERROR_NOT_LOGGED_IN. Measured: seconds from the disabling
   to the refusal. Goal: within 10 s.

Scenarios 2-4 work in the service's database and storage, found as the
admin tools find them (`--config`, or `--database-url` / `--storage-root`):
the users `abuse-*` are created when missing (password `--password`, VIP),
the disabled one is enabled again at the end, and the planted GLBs stay
(later runs reuse them). `--start-dev` starts `serve run` on
config/serve.dev.yaml in a temporary directory (scripts/bench_load.py's
DevService), works in its ./vggt_app.db, and stops it and every process it
started.

RSS is read from /proc, so memory goals need Linux: the TCPIngress replica
is the process whose command line holds "ServeReplica:" and "TCPIngress"
(with --start-dev, one below the service started; otherwise any on this
machine, summed when there are several). Without one, a memory goal counts
as not met.

Prints a markdown table (scenario, measured, goal, met). Exit status 0 when
every goal holds, 1 otherwise, 2 for bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import socket
import statistics
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "scripts"):  # the packages; bench_load's dev service and /proc readers
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import bench_load  # noqa: E402

LOGIN, IMAGE, GET_GLB = 1, 2, 4
ERROR_NOT_LOGGED_IN = "ERROR_NOT_LOGGED_IN"
LOGIN_OK = (b"[true,false]", b"[true,true]")  # the LOGIN replies of a success
MiB = 1024 * 1024
MEMORY_GOAL = 64 * MiB
LOGIN_GOAL_S = 1.0
REVOCATION_GOAL_S = 10.0
SAMPLE_S = 0.2
RECONNECT_PAUSE_S = 0.5
REPLY_TIMEOUT_S = 10.0

SLOW_NET, STALL_NET, READER_NET, REVOKE_NET = "127.0.9", "127.0.10", "127.0.11", "127.0.12"
LEGIT_USER, OWNER_USER, REVOKED_USER = "abuse-legit", "abuse-owner", "abuse-revoked"
STALL_USERS = [f"abuse-stall-{i}" for i in range(20)]
BIG_GLB_NAME, SMALL_GLB_NAME = "abuse-check-big", "abuse-check-small"

Measure = Callable[[], "int | None"]  # bytes of RSS now; None when nothing to measure


@dataclass(frozen=True)
class Target:
    host: str
    port: int


@dataclass(frozen=True)
class Finding:
    """One row of the table: what a scenario measured, against its goal."""

    scenario: str
    measured: str
    goal: str
    met: bool
    figures: dict = field(default_factory=dict, compare=False)  # the numbers behind `measured`


# --- options ---------------------------------------------------------------------------


def loopback_host(text: str) -> str:
    """`text` if it names a loopback address; otherwise an argparse error."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    try:
        address = ipaddress.ip_address(socket.gethostbyname(text)) if address is None else address
    except (OSError, ValueError):
        raise argparse.ArgumentTypeError(f"cannot resolve {text!r}") from None
    if address.version != 4 or not address.is_loopback:
        raise argparse.ArgumentTypeError(f"{text!r} is {address}, not an IPv4 loopback address: this check runs on loopback only")
    return str(address)


def parse_scenarios(text: str) -> list[int]:
    try:
        chosen = sorted({int(part) for part in text.split(",")})
    except ValueError:
        chosen = []
    if not chosen or not set(chosen) <= {1, 2, 3, 4}:
        raise argparse.ArgumentTypeError(f"expected scenario numbers 1-4 like 1,4, got {text!r}")
    return chosen


def build_parser() -> argparse.ArgumentParser:
    from serve_app.storage.location import add_location_options

    p = argparse.ArgumentParser(description="Attack scenarios against the service on loopback, against goals.")
    p.add_argument("--host", type=loopback_host, default="127.0.0.1", help="a loopback address")
    p.add_argument("--port", type=int, default=4567)
    p.add_argument("--scenarios", type=parse_scenarios, default=[1, 2, 3, 4], help="which to run, e.g. 1,4")
    p.add_argument("--slow-connections", type=int, default=320)
    p.add_argument("--slow-seconds", type=float, default=30.0)
    p.add_argument("--hold-seconds", type=float, default=15.0, help="how long scenarios 2 and 3 stall")
    p.add_argument("--reader-rate", type=int, default=0, help="bytes/s the slow GET_GLB readers take (0: none)")
    p.add_argument("--password", default="abuse-password")
    p.add_argument("--start-dev", action="store_true", help="start the dev service (serve.dev.yaml) for the run")
    add_location_options(p, storage_root=True)
    return p


# --- wire ----------------------------------------------------------------------------------


def header(command: int, length: int) -> bytes:
    return struct.pack(">BI", command, length)


def login_frame(username: str, password: str) -> bytes:
    payload = json.dumps({"u": username, "p": password}).encode()
    return header(LOGIN, len(payload)) + payload


async def connect(
    target: Target, source: str, *, receive_buffer: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection from the loopback address `source` (a small receive buffer if given)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.bind((source, 0))
        await asyncio.get_running_loop().sock_connect(sock, (target.host, target.port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock, limit=1 << 16)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2.0)
    except (OSError, asyncio.TimeoutError):
        pass


async def read_block(reader: asyncio.StreamReader) -> bytes:
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    return await reader.readexactly(length)


async def read_upload_error(reader: asyncio.StreamReader) -> str:
    """The code of an IMAGE error reply (name length 0, then the code)."""
    name = await read_block(reader)
    return "(a GLB)" if name else (await read_block(reader)).decode("ascii", "replace")


async def read_to_eof(reader: asyncio.StreamReader) -> None:
    try:
        while await reader.read(1 << 16):
            pass
    except OSError:
        pass


async def timed_request(target: Target, source: str, data: bytes) -> tuple[float, bytes | None]:
    """(seconds from connecting to the reply, the reply's block; None when none came) of one
    u32-length-replied frame (LOGIN, GET_GLB) on a new connection."""
    started = time.monotonic()
    reply = None
    try:
        reader, writer = await asyncio.wait_for(connect(target, source), REPLY_TIMEOUT_S)
        try:
            writer.write(data)
            reply = await asyncio.wait_for(read_block(reader), REPLY_TIMEOUT_S)
        finally:
            await close(writer)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        pass
    return time.monotonic() - started, reply


async def timed_login(target: Target, source: str, username: str, password: str) -> tuple[float, bool]:
    """(seconds, whether it was answered `[true, ...]`) of a LOGIN on a new connection."""
    seconds, reply = await timed_request(target, source, login_frame(username, password))
    return seconds, reply in LOGIN_OK


async def timed_get(target: Target, source: str, hash_text: str) -> tuple[float, bytes]:
    """(seconds, reply data) of a GET_GLB on a new connection; b"" when nothing came."""
    seconds, reply = await timed_request(target, source, header(GET_GLB, len(hash_text)) + hash_text.encode())
    return seconds, reply or b""


# --- memory --------------------------------------------------------------------------------


def ingress_rss(root: int | None = None) -> int | None:
    """RSS of the TCPIngress replica process(es) (below `root` when given); None if there is none."""
    pids = [pid for pid, cmd in bench_load.replica_processes(root).items() if "TCPIngress" in cmd]
    return sum(bench_load.rss_bytes(pid) for pid in pids) if pids else None


class PeakSampler(bench_load.MemorySampler):
    """`measure()` before, then its peak sampled every SAMPLE_S in a thread while in the `with`."""

    def __init__(self, measure: Measure, every_s: float = SAMPLE_S):
        super().__init__(None, every_s)
        self.measure = measure
        self.before: int | None = None
        self.peak: int | None = None

    def __enter__(self) -> "PeakSampler":
        self.before = self.peak = self.measure()
        super().__enter__()
        return self

    def sample(self) -> None:
        value = self.measure()
        if value is not None:
            self.peak = value if self.peak is None else max(self.peak, value)

    @property
    def growth(self) -> int | None:
        return None if self.before is None or self.peak is None else self.peak - self.before


def memory_finding(scenario: str, sampler: PeakSampler, detail: str, extra_ok: bool = True, extra_goal: str = "") -> Finding:
    """A row judging the ingress RSS growth against MEMORY_GOAL (not met when it could not be read)."""
    growth = sampler.growth
    shown = "ingress RSS not found (Linux /proc, a TCPIngress replica)" if growth is None else (
        f"ingress RSS +{growth / MiB:.1f} MiB ({sampler.before / MiB:.0f} -> peak {sampler.peak / MiB:.0f} MiB)"
    )
    goal = f"RSS growth < {MEMORY_GOAL // MiB} MiB" + (f"; {extra_goal}" if extra_goal else "")
    met = growth is not None and growth < MEMORY_GOAL and extra_ok
    return Finding(scenario, f"{shown}; {detail}", goal, met, {"rss_growth": growth})


# --- scenario 1: slow connections ------------------------------------------------------------


@dataclass
class SlowStats:
    opened: int = 0
    failed: int = 0  # connects that did not succeed
    held_s: list[float] = field(default_factory=list)  # how long each connection the server cut off lived


async def dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deadline: float, every_s: float) -> bool:
    """Send one byte every `every_s` until the server closes (True) or `deadline` passes (False)."""
    eof = asyncio.ensure_future(read_to_eof(reader))
    try:
        while (left := deadline - time.monotonic()) > 0:
            done, _ = await asyncio.wait({eof}, timeout=min(every_s, left))
            if done:
                return True
            try:
                writer.write(b"x")
                await writer.drain()
            except OSError:
                return True
        return False
    finally:
        eof.cancel()


async def slow_connection(target: Target, source: str, deadline: float, every_s: float, stats: SlowStats) -> None:
    """A LOGIN declaring 60000 bytes, dribbled; reconnect whenever cut off, until `deadline`."""
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.wait_for(connect(target, source), REPLY_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError):
            stats.failed += 1
            await asyncio.sleep(RECONNECT_PAUSE_S)
            continue
        stats.opened += 1
        started = time.monotonic()
        writer.write(header(LOGIN, 60000))
        if await dribble(reader, writer, deadline, every_s):
            stats.held_s.append(time.monotonic() - started)
        await close(writer)
        await asyncio.sleep(RECONNECT_PAUSE_S)


async def legit_logins(
    target: Target, source: str, username: str, password: str, start: float, deadline: float, every_s: float
) -> list[tuple[float, bool]]:
    """A LOGIN on a new connection every `every_s` from `start` to `deadline`."""
    results = []
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    while time.monotonic() < deadline:
        began = time.monotonic()
        results.append(await timed_login(target, source, username, password))
        await asyncio.sleep(max(0.0, began + every_s - time.monotonic()))
    return results


def slow_finding(
    logins: list[tuple[float, bool]], baseline: list[tuple[float, bool]], stats: SlowStats, connections: int
) -> Finding:
    """Judge the legitimate LOGINs under attack; `baseline`: the same client's LOGINs before it."""
    ms = [seconds * 1000 for seconds, _ in logins]
    quiet = statistics.median(seconds * 1000 for seconds, _ in baseline) if baseline else None
    good = sum(ok and seconds < LOGIN_GOAL_S for seconds, ok in logins)
    answered = sum(ok for _, ok in logins)
    latency = f"p50 {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms" if ms else "no LOGIN sent"
    held = f"cut off after <= {max(stats.held_s):.1f} s" if stats.held_s else "none cut off"
    before = f" (before the attack: p50 {quiet:.0f} ms)" if quiet is not None else ""
    measured = (
        f"legit LOGIN {latency}{before}, {answered}/{len(logins)} answered [true,...]; "
        f"{connections} slow: {stats.opened} connections, {held}, {stats.failed} connects failed"
    )
    figures = {"logins": len(logins), "answered": answered, "in_time": good, "latency_ms": ms,
               "baseline_ms": quiet, "opened": stats.opened, "held_s": stats.held_s, "failed": stats.failed}  # fmt: skip
    goal = f"every legit LOGIN [true,...] in < {LOGIN_GOAL_S:.0f} s"
    return Finding("1 slow connections", measured, goal, bool(logins) and good == len(logins), figures)


async def check_slow_connections(
    target: Target, username: str, password: str, *, connections: int = 320, addresses: int = 8,
    seconds: float = 30.0, dribble_s: float = 2.0, login_every_s: float = 2.0, baseline_logins: int = 3,
) -> Finding:  # fmt: skip
    """Scenario 1: slow LOGIN frames from `addresses` addresses while a legitimate client logs in.

    The legitimate client first logs in `baseline_logins` times without the attack: the service's own LOGIN time.
    """
    legit_source = f"{SLOW_NET}.200"
    baseline = [await timed_login(target, legit_source, username, password) for _ in range(baseline_logins)]
    stats = SlowStats()
    deadline = time.monotonic() + seconds
    slow = [
        slow_connection(target, f"{SLOW_NET}.{i % addresses + 1}", deadline, dribble_s, stats) for i in range(connections)
    ]
    legit = legit_logins(target, legit_source, username, password, time.monotonic() + min(2.0, seconds / 4),
                         deadline, login_every_s)  # fmt: skip
    *_, logins = await asyncio.gather(*slow, legit)
    return slow_finding(logins, baseline, stats, connections)


# --- scenario 2: stalled uploads -----------------------------------------------------------


async def logged_in(target: Target, source: str, username: str, password: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection from `source` on which `username` has logged in."""
    reader, writer = await connect(target, source)
    writer.write(login_frame(username, password))
    reply = await asyncio.wait_for(read_block(reader), REPLY_TIMEOUT_S)
    if reply not in LOGIN_OK:
        await close(writer)
        raise RuntimeError(f"LOGIN of {username} failed: {reply!r}")
    return reader, writer


async def stall_upload(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, declared: int, sent: int) -> asyncio.Task:
    """An IMAGE of one image declaring `declared` bytes, `sent` of them; the task reads any reply."""
    writer.write(header(IMAGE, declared) + struct.pack(">II", 1, declared - 8) + bytes(sent))
    await writer.drain()
    return asyncio.ensure_future(read_upload_error(reader))


async def check_stalled_uploads(
    target: Target, usernames: list[str], password: str, measure: Measure, *,
    declared: int = 100_000_000, sent: int = 64 * 1024, hold_s: float = 15.0,
) -> Finding:  # fmt: skip
    """Scenario 2: one stalled 100 MB IMAGE upload per user, each from its own address; ingress RSS.

    The users log in first, all at once; the RSS growth of those LOGINs is reported beside, not judged.
    """
    with PeakSampler(measure) as logins:
        opened = await asyncio.gather(
            *(logged_in(target, f"{STALL_NET}.{i + 1}", name, password) for i, name in enumerate(usernames)),
            return_exceptions=True,
        )
    connections = [c for c in opened if not isinstance(c, BaseException)]
    failed = [f"{type(e).__name__}: {e}" for e in opened if isinstance(e, BaseException)]
    await asyncio.sleep(1.0)
    with PeakSampler(measure) as sampler:
        tasks = [await stall_upload(reader, writer, declared, sent) for reader, writer in connections]
        await asyncio.sleep(hold_s)
    early = [task.result() if not task.exception() else "closed" for task in tasks if task.done()]
    for task, (_, writer) in zip(tasks, connections):
        task.cancel()
        await close(writer)
    detail = f"{len(tasks) - len(early)}/{len(usernames)} uploads held {hold_s:.0f} s"
    if early:
        detail += f", answered early: {', '.join(sorted(set(early)))} x{len(early)}"
    if failed:
        detail += f", not logged in: {failed[0]} x{len(failed)}"
    if logins.growth is not None:
        detail += f" (their {len(usernames)} concurrent LOGINs before: +{logins.growth / MiB:.0f} MiB, not judged)"
    finding = memory_finding("2 stalled uploads", sampler, detail)
    finding.figures.update(held=len(tasks) - len(early), early=early, failed=failed, login_growth=logins.growth)
    return finding


# --- scenario 3: slow GET_GLB readers ------------------------------------------------------------


async def slow_reader(target: Target, source: str, hash_text: str, until: float, rate: int) -> int:
    """GET_GLB with a 4 KiB receive buffer, then read `rate` bytes/s (0: nothing) until `until`; bytes read."""
    reader, writer = await connect(target, source, receive_buffer=4096)
    got = 0
    try:
        writer.write(header(GET_GLB, len(hash_text)) + hash_text.encode())
        while (left := until - time.monotonic()) > 0:
            await asyncio.sleep(min(1.0, left))
            if rate:
                got += len(await asyncio.wait_for(reader.read(rate), 1.0))
    except (OSError, asyncio.TimeoutError):
        pass
    finally:
        await close(writer)
    return got


async def check_slow_readers(
    target: Target, big_hash: str, small_hash: str, small_glb: bytes, measure: Measure, *,
    readers: int = 10, hold_s: float = 15.0, rate: int = 0,
) -> Finding:  # fmt: skip
    """Scenario 3: `readers` slow GET_GLBs of the big GLB; a normal GET_GLB of the small one meanwhile."""
    until = time.monotonic() + hold_s
    with PeakSampler(measure) as sampler:
        slow = [slow_reader(target, f"{READER_NET}.{i + 1}", big_hash, until, rate) for i in range(readers)]

        async def normal() -> tuple[float, bytes]:
            await asyncio.sleep(hold_s / 2)
            return await timed_get(target, f"{READER_NET}.200", small_hash)

        *got, (seconds, data) = await asyncio.gather(*slow, normal(), return_exceptions=True)
    intact = data == small_glb
    small = f"small GET_GLB {'intact' if intact else 'FAILED ' + repr(data[:40])} in {seconds * 1000:.0f} ms"
    read = sum(n for n in got if isinstance(n, int))
    detail = f"{readers} readers at {rate} B/s took {read / MiB:.1f} MiB in {hold_s:.0f} s; {small}"
    finding = memory_finding("3 slow GET_GLB readers", sampler, detail, intact, "small GET_GLB intact")
    finding.figures.update(small_ok=intact, small_ms=seconds * 1000, read=read)
    return finding


# --- scenario 4: revocation ------------------------------------------------------------------


async def probe_image(target: Target, source: str, wait_s: float = 0.5) -> str | None:
    """An IMAGE header from `source` without LOGIN: the code it was refused with, None if admitted."""
    reader, writer = await connect(target, source)
    try:
        writer.write(header(IMAGE, 1000))
        try:
            return await asyncio.wait_for(read_upload_error(reader), wait_s)
        except asyncio.TimeoutError:
            writer.write_eof()  # the server ends the request (ERROR_INCOMPLETE_REQUEST) and frees its slot
            await asyncio.wait_for(read_to_eof(reader), REPLY_TIMEOUT_S)
            return None
    finally:
        await close(writer)


async def check_revocation(
    target: Target, username: str, password: str, disable: Callable[[], None], *,
    limit_s: float = 30.0, every_s: float = 0.25,
) -> Finding:  # fmt: skip
    """Scenario 4: seconds from disabling a logged-in user to her address's IMAGE being refused."""
    source = f"{REVOKE_NET}.1"
    goal = f"refused {ERROR_NOT_LOGGED_IN} within {REVOCATION_GOAL_S:.0f} s"
    _, ok = await timed_login(target, source, username, password)
    before = await probe_image(target, source) if ok else "LOGIN failed"
    if before is not None:
        return Finding("4 revocation", f"not admitted before disabling: {before}", goal, False, {"seconds": None})
    await asyncio.to_thread(disable)
    disabled_at = time.monotonic()
    codes = []
    while (elapsed := time.monotonic() - disabled_at) < limit_s:
        code = await probe_image(target, source)
        if code == ERROR_NOT_LOGGED_IN:
            measured = f"refused {elapsed:.1f} s after disabling ({len(codes)} uploads admitted before)"
            return Finding("4 revocation", measured, goal, elapsed < REVOCATION_GOAL_S, {"seconds": elapsed})
        codes.append(code or "admitted")
        await asyncio.sleep(every_s)
    measured = f"not refused {limit_s:.0f} s after disabling (last: {codes[-1] if codes else '-'})"
    return Finding("4 revocation", measured, goal, False, {"seconds": None})


# --- the service's database and storage -------------------------------------------------------


@dataclass(frozen=True)
class Location:
    database_url: str
    storage_root: str


def ensure_users(location: Location, password: str) -> None:
    """Create the users the scenarios log in as (VIP), when missing; enable REVOKED_USER."""
    bench_load.create_users(location.database_url, [LEGIT_USER, OWNER_USER, REVOKED_USER, *STALL_USERS], password)
    set_active(location, REVOKED_USER, True)


def set_active(location: Location, username: str, active: bool) -> None:
    from serve_app.config import AuthSettings
    from serve_app.storage import UserStore
    from serve_app.storage.location import open_database

    db = open_database(location.database_url, create=False)
    try:
        UserStore(db, AuthSettings()).set_status(username, active)
    finally:
        db.dispose()


def glb_bytes(size: int) -> bytes:
    """`size` bytes starting like a GLB (only its header is valid; the service sends files as they are)."""
    head = b"glTF" + struct.pack("<II", 2, size)
    return head + bytes(range(256)) * ((size - len(head)) // 256) + bytes((size - len(head)) % 256)


def plant_glb(location: Location, owner: str, original_name: str, size: int) -> str:
    """The hash of OWNER's GLB called `original_name` of `size` bytes, stored now unless one is already there."""
    from serve_app.config import AuthSettings
    from serve_app.storage import GlbStore, UserStore
    from serve_app.storage.location import open_database

    db = open_database(location.database_url, create=False)
    try:
        user = UserStore(db, AuthSettings()).get(owner)
        store = GlbStore(db, location.storage_root)
        for info in store.list_for_user(user.id, 100):
            if info.original_name == original_name and info.file_size == size:
                return info.hashed_name
        return store.save(glb_bytes(size), user.id, original_name).hashed_name
    finally:
        db.dispose()


# --- running the scenarios -------------------------------------------------------------------


def run_scenarios(args: argparse.Namespace, target: Target, location: Location, measure: Measure) -> list[Finding]:
    """The chosen scenarios in order, each printed as it ends."""
    findings = []
    for number in args.scenarios:
        finding = asyncio.run(run_scenario(number, args, target, location, measure))
        print(f"scenario {finding.scenario}: {'met' if finding.met else 'NOT MET'}", flush=True)
        findings.append(finding)
        time.sleep(2.0)  # let the server close what the scenario left before the next baseline
    return findings


async def run_scenario(number: int, args: argparse.Namespace, target: Target, location: Location, measure: Measure) -> Finding:
    if number == 1:
        return await check_slow_connections(
            target, LEGIT_USER, args.password, connections=args.slow_connections, seconds=args.slow_seconds
        )
    if number == 2:
        return await check_stalled_uploads(target, STALL_USERS, args.password, measure, hold_s=args.hold_seconds)
    if number == 3:
        big = plant_glb(location, OWNER_USER, BIG_GLB_NAME, 100_000_000)
        small = plant_glb(location, OWNER_USER, SMALL_GLB_NAME, 4096)
        return await check_slow_readers(
            target, big, small, glb_bytes(4096), measure, hold_s=args.hold_seconds, rate=args.reader_rate
        )
    try:
        return await check_revocation(
            target, REVOKED_USER, args.password, lambda: set_active(location, REVOKED_USER, False)
        )
    finally:
        set_active(location, REVOKED_USER, True)


COLUMNS = ["scenario", "measured", "goal", "met"]


def table(findings: list[Finding]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for f in findings:
        lines.append(f"| {f.scenario} | {f.measured} | {f.goal} | {'yes' if f.met else 'NO'} |")
    return "\n".join(lines)


def report(findings: list[Finding]) -> int:
    """Print the table; 0 when every goal holds."""
    print(table(findings))
    missed = [f.scenario for f in findings if not f.met]
    if missed:
        print(f"FAILED: goal not met: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


def check_dev_service(args: argparse.Namespace) -> int:
    """Start the dev service, run the scenarios against it, stop it and whatever it started."""
    service = bench_load.DevService()
    try:
        service.start()
        started = time.monotonic()
        service.wait_ready("127.0.0.1")
        print(f"dev service on port {service.port} answered after {time.monotonic() - started:.0f} s", flush=True)
        location = Location(service.database_url, str(service.dir))
        ensure_users(location, args.password)
        root = service.process.pid
        findings = run_scenarios(args, Target("127.0.0.1", service.port), location, lambda: ingress_rss(root))
        return report(findings)
    finally:
        left = service.stop()
        if left:
            print(f"killed {len(left)} process(es) left by serve run: {left}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.slow_connections < 1 or args.slow_seconds <= 0 or args.hold_seconds <= 0 or args.reader_rate < 0:
        parser.error("--slow-connections, --slow-seconds and --hold-seconds must be positive, --reader-rate 0 or more")
    if args.start_dev:
        return check_dev_service(args)
    from serve_app.storage.location import LocationError, storage_settings

    try:
        storage = storage_settings(args)
        location = Location(storage.database_url, storage.storage_root)
        ensure_users(location, args.password)
    except LocationError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    return report(run_scenarios(args, Target(args.host, args.port), location, ingress_rss))


if __name__ == "__main__":
    sys.exit(main())
