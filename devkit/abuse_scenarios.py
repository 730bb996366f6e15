"""The four attack scenarios of `scripts/abuse_check.py`, each measured against its goal.

Every scenario talks to a service on loopback from source addresses of its
own and returns a `Finding`; what each sends and measures, and why, is told
in `devkit.abuse` (the check's runner and report).
"""

from __future__ import annotations

import asyncio
import statistics
import struct
import time
from dataclasses import dataclass, field
from typing import Callable

from devkit.loopback_wire import (
    LOGIN_OK,
    REPLY_TIMEOUT_S,
    Target,
    close,
    connect,
    header,
    login_frame,
    read_block,
    read_to_eof,
    read_upload_error,
    timed_get,
    timed_login,
)
from devkit.memory import Measure, PeakSampler
from tcp_proxy.codec import GET_GLB, IMAGE, LOGIN
from tcp_proxy.errors import NotLoggedInError

ERROR_NOT_LOGGED_IN = NotLoggedInError.code
MiB = 1024 * 1024
MEMORY_GOAL = 64 * MiB
LOGIN_GOAL_S = 1.0
REVOCATION_GOAL_S = 10.0
SAMPLE_S = 0.2
RECONNECT_PAUSE_S = 0.5

SLOW_NET, STALL_NET, READER_NET, REVOKE_NET = "127.0.9", "127.0.10", "127.0.11", "127.0.12"
LEGIT_USER, OWNER_USER, REVOKED_USER = "abuse-legit", "abuse-owner", "abuse-revoked"
STALL_USERS = [f"abuse-stall-{i}" for i in range(20)]
BIG_GLB_NAME, SMALL_GLB_NAME = "abuse-check-big", "abuse-check-small"


@dataclass(frozen=True)
class Finding:
    """One row of the table: what a scenario measured, against its goal."""

    scenario: str
    measured: str
    goal: str
    met: bool
    figures: dict = field(default_factory=dict, compare=False)  # the numbers behind `measured`


# --- memory --------------------------------------------------------------------------------


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
    with PeakSampler(measure, SAMPLE_S) as logins:
        opened = await asyncio.gather(
            *(logged_in(target, f"{STALL_NET}.{i + 1}", name, password) for i, name in enumerate(usernames)),
            return_exceptions=True,
        )
    connections = [c for c in opened if not isinstance(c, BaseException)]
    failed = [f"{type(e).__name__}: {e}" for e in opened if isinstance(e, BaseException)]
    await asyncio.sleep(1.0)
    with PeakSampler(measure, SAMPLE_S) as sampler:
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
    with PeakSampler(measure, SAMPLE_S) as sampler:
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
