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
5. Understated video: a 300-frame 1080p MP4 whose container claims one
   second, sent as VIDEO from 127.0.13.1 (devkit/abuse_video.py). Measured:
   RSS growth of the FrameExtractor replica(s) until the reply. Goals: under
   900 MiB; a reply in VIDEO's shape.
6. Starvation: a user (127.0.16.1) finishes two IMAGE uploads sent over
   8 s each and holds a third open; then another user (127.0.16.2) sends 5
   IMAGE requests. Goal: at least 4 not ERROR_BUSY.
7. Over-limit dribble: 32 connections from 127.0.17.1 send a LOGIN header
   announcing 4 GiB, then a byte every 1.5 s; 1 s in, a LOGIN from that
   address. Goals: it is answered `[true, ...]` in under 3 s; no dribbler
   open after 45 s.
8. Unread downloads: 40 connections from 127.0.18.1 GET_GLB the 100 MB
   planted GLB and read nothing; 2 s in, 127.0.18.2 fetches the small one.
   Goal: served intact in under 20 s. (devkit/abuse_front_door.py)

Scenarios 2-4 and 6-8 work in the service's database and storage, found as the
admin tools find them (`--config`, or `--database-url` / `--storage-root`):
the users `abuse-*` are created when missing (password `--password`, VIP),
the disabled one is enabled again at the end, and the planted GLBs stay
(later runs reuse them). `--start-dev` starts `serve run` on
config/serve.dev.yaml in a temporary directory (devkit/dev_service.py), works in its ./vggt_app.db, and stops it and every process it
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
import socket
import struct
import sys
import time
from dataclasses import dataclass

from devkit.abuse_scenarios import (  # noqa: F401  (MiB, Target, memory_finding: the check's vocabulary)
    LEGIT_USER,
    OWNER_USER,
    REVOKED_USER,
    STALL_USERS,
    BIG_GLB_NAME,
    SMALL_GLB_NAME,
    MiB,
    Finding,
    Target,
    check_revocation,
    check_slow_connections,
    check_slow_readers,
    check_stalled_uploads,
    memory_finding,
)
from devkit.abuse_video import check_video_bomb
from devkit.abuse_front_door import check_over_limit_dribble, check_starvation, check_unread_downloads
from devkit.dev_service import run_with_dev_service
from devkit.memory import Measure, ingress_rss
from devkit.users import create_users, set_active


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
    if not chosen or not set(chosen) <= {1, 2, 3, 4, 5, 6, 7, 8}:
        raise argparse.ArgumentTypeError(f"expected scenario numbers 1-8 like 1,4, got {text!r}")
    return chosen


# --- the service's database and storage -------------------------------------------------------


@dataclass(frozen=True)
class Location:
    database_url: str
    storage_root: str


def ensure_users(location: Location, password: str) -> None:
    """Create the users the scenarios log in as (VIP), when missing; enable REVOKED_USER."""
    usernames = [LEGIT_USER, OWNER_USER, REVOKED_USER, *STALL_USERS]
    create_users(location.database_url, dict.fromkeys(usernames, True), password)
    set_active(location.database_url, REVOKED_USER, True)


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
    if number == 5:
        return await check_video_bomb(target, LEGIT_USER, args.password)
    if number == 6:
        return await check_starvation(target, STALL_USERS[0], LEGIT_USER, args.password)
    if number == 7:
        return await check_over_limit_dribble(target, LEGIT_USER, args.password)
    if number == 8:
        big = plant_glb(location, OWNER_USER, BIG_GLB_NAME, 100_000_000)
        small = plant_glb(location, OWNER_USER, SMALL_GLB_NAME, 4096)
        return await check_unread_downloads(target, big, small, glb_bytes(4096))
    try:
        return await check_revocation(
            target, REVOKED_USER, args.password, lambda: set_active(location.database_url, REVOKED_USER, False)
        )
    finally:
        set_active(location.database_url, REVOKED_USER, True)


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

    def scenarios(service) -> int:
        location = Location(service.database_url, str(service.dir))
        ensure_users(location, args.password)
        root = service.process.pid
        return report(run_scenarios(args, Target("127.0.0.1", service.port), location, lambda: ingress_rss(root)))

    return run_with_dev_service(scenarios)


def service_location(args: argparse.Namespace) -> Location:
    """The database and storage the options name (as the admin tools find them), its users made.

    Raises serve_app.storage.location.LocationError when they cannot be used.
    """
    from serve_app.storage.location import storage_settings

    storage = storage_settings(args)
    location = Location(storage.database_url, storage.storage_root)
    ensure_users(location, args.password)
    return location


def check_service(args: argparse.Namespace, location: Location) -> int:
    """The scenarios against the service at --host/--port, whose database and storage are `location`."""
    return report(run_scenarios(args, Target(args.host, args.port), location, ingress_rss))
