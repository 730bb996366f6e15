"""Load on a running service: many phone-like clients at once, latency, refusals and memory.

    .venv/bin/python scripts/bench_load.py --start-dev --clients 1,5,20 --duration 60
    .venv/bin/python scripts/bench_load.py --host 127.0.0.1 --port 4567 --clients 1,5,20,50 --requests 20 \\
        --create-users --config config/serve.yaml          # users bench0..bench49 in the service's database

Each client acts like the Android app: it LOGINs once on a connection of its
own, then opens a new connection for every request, from a loopback source
address of its own (127.88.x.y), so the service's address binding (sessions
bound to the client's IP) is its own. Requests are drawn at random with the
weights of `--mix` (default image=6,video=1,get_glb=2,login=1):

- IMAGE: `--photos` generated 320x240 JPEGs; every request's photos differ
  (bytes appended after the JPEG end marker) so the service's result cache
  cannot answer it;
- VIDEO: a generated 3 s 320x240 H.264 clip (the user must be VIP), made
  unique per request with a trailing MP4 `free` box; a reply naming a GLB the
  client already got is counted as a cache hit;
- GET_GLB: the client's latest result (before it has one, it sends IMAGE);
- LOGIN: a fresh login of the same user.

A round (one per value of `--clients`) runs every client for `--duration`
seconds (no new request starts after that; those under way finish) or for
`--requests` requests each (the first LOGIN is counted, not part of
`--requests`). Measured per round, printed as one row of a markdown table:

- requests sent, OK replies per second of the round (`OK/s`);
- latency of the OK replies per command, p50/p95/p99 in ms, from connecting
  to the last byte of the reply (a reconstruction includes its queueing);
- outcomes: OK, ERROR_BUSY, any other error code (listed below the table),
  dropped (no reply: refused or closed connection, timeout);
- memory: peak RSS of the TCPIngress replica and peak of the sum of RSS over
  every Serve replica process of this machine (processes whose command line
  holds `ServeReplica:`; with `--start-dev` only those of the service it
  started), sampled every 0.5 s.

Users `<--users-prefix>0..N-1` (N the largest client count) must exist with
`--password`; VIDEO needs them VIP. `--create-users` creates the missing ones
(VIP) in the database of `--config` / `--database-url` (as the admin tools
find it); against a remote service create them there beforehand.
`--start-dev` starts `serve run` on config/serve.dev.yaml (tiny model on CPU)
in a fresh temporary directory on free ports, creates the users in its
database, runs the rounds and stops it (SIGINT, then kill) and every process
it started.

Exit status: 0, or 1 if any request was dropped, 2 for bad options.
"""

from __future__ import annotations

import argparse
import random
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from devkit.client import DevClient
from devkit.dev_service import run_with_dev_service
from devkit.media import synthetic_photos, synthetic_video
from devkit.memory import ReplicaMemory
from devkit.users import create_users
from tcp_proxy.client import ProtocolViolation, ServerError
from tcp_proxy.codec import GET_GLB, IMAGE, LOGIN, VIDEO

COMMANDS = {"image": IMAGE, "video": VIDEO, "get_glb": GET_GLB, "login": LOGIN}
LABELS = {IMAGE: "IMAGE", VIDEO: "VIDEO", GET_GLB: "GET_GLB", LOGIN: "LOGIN"}
DEFAULT_MIX = "image=6,video=1,get_glb=2,login=1"
OK, BUSY, DROPPED = "OK", "ERROR_BUSY", "DROPPED"
SOURCE_NET = "127.88"  # client i connects from 127.88.<i // 250>.<i % 250 + 1>
MiB = 1024 * 1024


# --- options ---------------------------------------------------------------------------


def parse_mix(text: str) -> dict[int, int]:
    """`image=6,video=1,...` into {command byte: weight}; unnamed commands weigh 0."""
    mix: dict[int, int] = {}
    for part in text.split(","):
        name, sep, weight = part.strip().partition("=")
        if name not in COMMANDS or not sep or not weight.strip().isdigit():
            raise argparse.ArgumentTypeError(
                f"expected name=weight pairs with names {', '.join(COMMANDS)} and whole weights, got {part!r}"
            )
        mix[COMMANDS[name]] = int(weight)
    if not any(mix.values()):
        raise argparse.ArgumentTypeError(f"every weight in {text!r} is 0")
    return mix


def parse_clients(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive client counts like 1,5,20, got {text!r}")
    return counts


# --- media -----------------------------------------------------------------------------


def make_media(photos: int, folder: Path) -> tuple[list[bytes], bytes]:
    """`photos` 320x240 JPEGs and a 3 s 320x240 H.264 clip."""
    return synthetic_photos(photos, 320, 240), synthetic_video(folder / "clip.mp4", 3.0, 320, 240).read_bytes()


def unique_jpeg(blob: bytes, tag: str) -> bytes:
    """The same picture; bytes after the end marker make the file (and its cache key) differ."""
    return blob + tag.encode()


def unique_mp4(blob: bytes, tag: str) -> bytes:
    """The same video with a trailing `free` box (ignored by readers) holding `tag`."""
    data = tag.encode()
    return blob + struct.pack(">I", 8 + len(data)) + b"free" + data


# --- one request on its own connection ----------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    command: int
    result: str  # OK, an error code, LOGIN_FAILED or DROPPED
    seconds: float
    name: str = ""  # the GLB name of an IMAGE/VIDEO success
    detail: str = ""  # why a request was dropped


@dataclass(frozen=True)
class Request:
    command: int
    images: list[bytes] = field(default_factory=list)  # IMAGE
    video: Path | None = None  # VIDEO
    text: str = ""  # GET_GLB: the hash; LOGIN: the username


def source_address(index: int) -> str:
    return f"{SOURCE_NET}.{index // 250}.{index % 250 + 1}"


def _ask(client: DevClient, request: Request, password: str) -> tuple[str, str]:
    """(result, GLB name) of one request."""
    if request.command == LOGIN:
        return (OK if client.login(request.text, password)[0] else "LOGIN_FAILED"), ""
    if request.command == GET_GLB:
        client.get(request.text)
        return OK, ""
    if request.command == IMAGE:
        return OK, client.images(request.images)[0]
    return OK, client.video(request.video)[0]


def send_request(host: str, port: int, source: str, request: Request, *, password: str = "", timeout: float) -> Outcome:
    """Connect from `source`, send one request, read its reply, close."""
    started = time.monotonic()
    try:
        with DevClient(host, port, timeout=timeout, source=source) as client:
            result, name = _ask(client, request, password)
    except ServerError as exc:
        return Outcome(request.command, exc.code[:64], time.monotonic() - started)
    except (OSError, ValueError, ProtocolViolation) as exc:  # ConnectionError and timeouts are OSErrors
        return Outcome(request.command, DROPPED, time.monotonic() - started, detail=f"{type(exc).__name__}: {exc}")
    return Outcome(request.command, result, time.monotonic() - started, name=name)


# --- a client -------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """What every client of a round sends, and where."""

    host: str
    port: int
    photos: list[bytes]
    video: bytes
    mix: dict[int, int]
    password: str
    timeout: float = 600.0
    requests: int | None = None  # per client; else until `deadline` (time.monotonic())
    deadline: float | None = None


@dataclass
class ClientLog:
    username: str
    source: str
    outcomes: list[Outcome] = field(default_factory=list)
    video_hits: int = 0  # VIDEO replies naming a GLB this client already had


def _request(work: Workload, log: ClientLog, command: int, folder: Path) -> Request:
    tag = f"{log.username}:{len(log.outcomes)}:{time.time_ns()}"
    if command == IMAGE:
        return Request(IMAGE, images=[unique_jpeg(b, f"{tag}:{i}") for i, b in enumerate(work.photos)])
    if command == VIDEO:
        path = folder / "clip.mp4"
        path.write_bytes(unique_mp4(work.video, tag))
        return Request(VIDEO, video=path)
    if command == GET_GLB:
        return Request(GET_GLB, text=_latest_name(log))
    return Request(LOGIN, text=log.username)


def _latest_name(log: ClientLog) -> str:
    return next((o.name for o in reversed(log.outcomes) if o.name), "")


def _more(work: Workload, done: int) -> bool:
    if work.requests is not None:
        return done < work.requests
    return work.deadline is not None and time.monotonic() < work.deadline


def run_client(work: Workload, index: int, username: str) -> ClientLog:
    """LOGIN once, then one connection per request until the workload says stop."""
    log = ClientLog(username, source_address(index))
    rng = random.Random(index)
    commands, weights = list(work.mix), list(work.mix.values())
    with tempfile.TemporaryDirectory(prefix="bench_load_client_") as folder:
        command, done = LOGIN, -1
        while done < 0 or _more(work, done):
            if command == GET_GLB and not _latest_name(log):
                command = IMAGE
            earlier = {o.name for o in log.outcomes if o.name}
            request = _request(work, log, command, Path(folder))
            outcome = send_request(work.host, work.port, log.source, request, password=work.password, timeout=work.timeout)
            log.video_hits += command == VIDEO and outcome.name in earlier
            log.outcomes.append(outcome)
            command, done = rng.choices(commands, weights)[0], done + 1
    return log


# --- a round and its row -------------------------------------------------------------------


@dataclass
class RoundResult:
    clients: int
    seconds: float
    logs: list[ClientLog]
    ingress_peak: int = 0
    total_peak: int = 0

    @property
    def outcomes(self) -> list[Outcome]:
        return [o for log in self.logs for o in log.outcomes]


def run_round(work: Workload, usernames: list[str], *, memory_root: int | None = None) -> RoundResult:
    """Every user of `usernames` as one client, all at once."""
    logs: list[ClientLog | None] = [None] * len(usernames)

    def client(i: int) -> None:
        logs[i] = run_client(work, i, usernames[i])

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(usernames))]
    started = time.monotonic()
    with ReplicaMemory(memory_root) as memory:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    seconds = time.monotonic() - started
    return RoundResult(len(usernames), seconds, [log for log in logs if log], memory.ingress_peak, memory.total_peak)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def latency_cell(outcomes: list[Outcome], command: int) -> str:
    ms = [o.seconds * 1000 for o in outcomes if o.command == command and o.result == OK]
    return "/".join(f"{percentile(ms, q):.0f}" for q in (50, 95, 99)) if ms else "-"


def _mib(n: int) -> str:
    return f"{n / MiB:.0f}" if n else "-"


COLUMNS = [
    "clients", "requests", "OK/s",
    *(f"{LABELS[c]} ms p50/95/99" for c in (IMAGE, VIDEO, GET_GLB, LOGIN)),
    "OK", "ERROR_BUSY", "other errors", "dropped", "ingress MiB", "replicas MiB",
]  # fmt: skip


def summarize(result: RoundResult) -> dict[str, str]:
    """The table row of a round, by column name."""
    outcomes = result.outcomes
    counts = Counter(o.result for o in outcomes)
    other = len(outcomes) - counts[OK] - counts[BUSY] - counts[DROPPED]
    cells = [
        result.clients, len(outcomes), f"{counts[OK] / result.seconds:.2f}",
        *(latency_cell(outcomes, c) for c in (IMAGE, VIDEO, GET_GLB, LOGIN)),
        counts[OK], counts[BUSY], other, counts[DROPPED], _mib(result.ingress_peak), _mib(result.total_peak),
    ]  # fmt: skip
    return dict(zip(COLUMNS, map(str, cells)))


def table_header() -> str:
    return "| " + " | ".join(COLUMNS) + " |\n|" + " --- |" * len(COLUMNS)


def table_row(row: dict[str, str]) -> str:
    return "| " + " | ".join(row[c] for c in COLUMNS) + " |"


def notes(result: RoundResult) -> list[str]:
    """Lines on what the table does not show: other error codes, drops, video cache hits."""
    lines = []
    other = Counter(
        f"{LABELS[o.command]} {o.result}" for o in result.outcomes if o.result not in (OK, BUSY, DROPPED)
    )
    if other:
        lines.append(f"{result.clients} clients, other errors: " + ", ".join(f"{k} x{n}" for k, n in other.items()))
    for o in (o for o in result.outcomes if o.result == DROPPED):
        lines.append(f"{result.clients} clients, DROPPED {LABELS[o.command]} after {o.seconds:.1f} s: {o.detail}")
    hits = sum(log.video_hits for log in result.logs)
    if hits:
        lines.append(f"{result.clients} clients: {hits} VIDEO replies named a GLB the client already had (cache hits)")
    return lines


# --- the run ------------------------------------------------------------------------------


def run_rounds(args: argparse.Namespace, usernames: list[str], host: str, port: int, memory_root: int | None) -> int:
    """One round per client count; prints the table and the notes; 1 if any request was dropped."""
    with tempfile.TemporaryDirectory(prefix="bench_load_media_") as folder:
        photos, video = make_media(args.photos, Path(folder))
    print(table_header(), flush=True)
    lines, dropped = [], 0
    for count in args.clients:
        deadline = None if args.requests else time.monotonic() + (args.duration or 60.0)
        work = Workload(host, port, photos, video, args.mix, args.password, args.timeout, args.requests, deadline)
        result = run_round(work, usernames[:count], memory_root=memory_root)
        print(table_row(summarize(result)), flush=True)
        lines += notes(result)
        dropped += sum(o.result == DROPPED for o in result.outcomes)
    for line in lines:
        print(line)
    if dropped:
        print(f"FAILED: {dropped} request(s) dropped (no reply)", file=sys.stderr)
        return 1
    return 0


def vip_users(usernames: list[str]) -> dict[str, bool]:
    return dict.fromkeys(usernames, True)


def run(args: argparse.Namespace) -> int:
    """The rounds of `args` against the service it names, or against the dev service (`args.start_dev`)."""
    usernames = [f"{args.users_prefix}{i}" for i in range(max(args.clients))]
    if not args.start_dev:
        if args.create_users:
            from serve_app.storage.location import storage_settings

            created = create_users(storage_settings(args).database_url, vip_users(usernames), args.password)
            print(f"created {created} user(s)")
        return run_rounds(args, usernames, args.host, args.port, None)

    def rounds(service) -> int:
        print(f"created {create_users(service.database_url, vip_users(usernames), args.password)} user(s)", flush=True)
        return run_rounds(args, usernames, "127.0.0.1", service.port, service.process.pid)

    return run_with_dev_service(rounds)
