#!/usr/bin/env python
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
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "scripts"):  # the packages; bench_service's media
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from tcp_proxy.client import Client, ProtocolViolation, ServerError  # noqa: E402
from tcp_proxy.codec import GET_GLB, IMAGE, LOGIN, VIDEO  # noqa: E402

COMMANDS = {"image": IMAGE, "video": VIDEO, "get_glb": GET_GLB, "login": LOGIN}
LABELS = {IMAGE: "IMAGE", VIDEO: "VIDEO", GET_GLB: "GET_GLB", LOGIN: "LOGIN"}
DEFAULT_MIX = "image=6,video=1,get_glb=2,login=1"
OK, BUSY, DROPPED = "OK", "ERROR_BUSY", "DROPPED"
SOURCE_NET = "127.88"  # client i connects from 127.88.<i // 250>.<i % 250 + 1>
SAMPLE_S = 0.5
READY_S = 180.0
STOP_S = 60.0
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


def build_parser() -> argparse.ArgumentParser:
    from serve_app.storage.location import add_location_options

    p = argparse.ArgumentParser(description="Load benchmark of the reconstruction service (TCP protocol).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4567)
    p.add_argument("--clients", type=parse_clients, default=parse_clients("1,5,20,50"), help="one round per count")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--duration", type=float, help="seconds per round (default 60)")
    stop.add_argument("--requests", type=int, help="requests per client per round")
    p.add_argument("--mix", type=parse_mix, default=parse_mix(DEFAULT_MIX), help=f"weights (default {DEFAULT_MIX})")
    p.add_argument("--photos", type=int, default=3, help="photos per IMAGE request")
    p.add_argument("--users-prefix", default="bench")
    p.add_argument("--password", default="bench-password")
    p.add_argument("--timeout", type=float, default=600.0, help="socket timeout of every request, seconds")
    p.add_argument("--create-users", action="store_true", help="create the missing users (VIP) in the database")
    p.add_argument("--start-dev", action="store_true", help="start the dev service (serve.dev.yaml) for the run")
    add_location_options(p)
    return p


# --- media -----------------------------------------------------------------------------


def make_media(photos: int, folder: Path) -> tuple[list[bytes], bytes]:
    """`photos` 320x240 JPEGs and a 3 s 320x240 H.264 clip."""
    from bench_service import synthetic_photos, synthetic_video

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


def _connect(host: str, port: int, source: str, timeout: float) -> Client:
    client = Client(host, port, timeout=timeout)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.connect((host, port))
    except OSError:
        sock.close()
        raise
    client.sock = sock
    return client


def _ask(client: Client, request: Request, password: str) -> tuple[str, str]:
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
        with _connect(host, port, source, timeout) as client:
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


# --- memory -------------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def descendants(root: int) -> set[int]:
    """Every process below `root` (not `root` itself)."""
    children, found, todo = _children_map(), set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def replica_processes(root: int | None = None) -> dict[int, str]:
    """pid -> command line of the Serve replica processes (under `root` when given)."""
    pids = descendants(root) if root else [int(e) for e in os.listdir("/proc") if e.isdigit()]
    found = {}
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "ServeReplica:" in cmdline:
            found[pid] = cmdline.strip()
    return found


def rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class MemorySampler:
    """Peak RSS of the TCPIngress replica and of all replicas together, sampled in a thread."""

    def __init__(self, root: int | None = None, every_s: float = SAMPLE_S):
        self.root, self.every_s = root, every_s
        self.ingress_peak = self.total_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def sample(self) -> None:
        replicas = {pid: (cmd, rss_bytes(pid)) for pid, cmd in replica_processes(self.root).items()}
        ingress = sum(rss for cmd, rss in replicas.values() if "TCPIngress" in cmd)
        self.ingress_peak = max(self.ingress_peak, ingress)
        self.total_peak = max(self.total_peak, sum(rss for _, rss in replicas.values()))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)


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
    with MemorySampler(memory_root) as memory:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    seconds = time.monotonic() - started
    return RoundResult(len(usernames), seconds, [log for log in logs if log], memory.ingress_peak, memory.total_peak)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def _latency_cell(outcomes: list[Outcome], command: int) -> str:
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
        *(_latency_cell(outcomes, c) for c in (IMAGE, VIDEO, GET_GLB, LOGIN)),
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


# --- users ---------------------------------------------------------------------------------


def create_users(database_url: str, usernames: list[str], password: str) -> int:
    """Create the missing users as VIP; the number created."""
    from serve_app.config import AuthSettings
    from serve_app.storage import UserStore
    from serve_app.storage.location import open_database

    db = open_database(database_url, create=True)
    try:
        users = UserStore(db, AuthSettings())
        missing = [name for name in usernames if users.get(name) is None]
        for name in missing:
            users.create(name, password, is_vip=True)
        return len(missing)
    finally:
        db.dispose()


# --- the dev service ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answers_login(host: str, port: int) -> bool:
    return send_request(host, port, "127.0.0.1", Request(LOGIN), timeout=10.0).result != DROPPED


class DevService:
    """`serve run` of config/serve.dev.yaml in a temporary directory, on free ports."""

    def __init__(self) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="bench_load_")
        self.dir = Path(self.tmp.name)
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.started: set[int] = set()  # every process seen under `serve run`

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.dir / 'vggt_app.db'}"

    def write_config(self) -> Path:
        import yaml

        config = yaml.safe_load((ROOT / "config" / "serve.dev.yaml").read_text())
        config["http_options"]["port"] = free_port()
        config["applications"][0]["args"]["proxy"]["port"] = self.port
        path = self.dir / "serve.dev.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def start(self) -> None:
        serve = Path(sys.executable).with_name("serve")
        config = self.write_config()
        log = open(self.dir / "serve.log", "wb")
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        self.process = subprocess.Popen(
            [str(serve), "run", "--address", "local", str(config)],  # "local": a cluster of its own
            cwd=self.dir, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        log.close()

    def wait_ready(self, host: str, timeout_s: float = READY_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"serve run exited ({self.process.returncode}):\n{self.log_tail()}")
            self.started |= descendants(self.process.pid)
            if answers_login(host, self.port):
                return
            time.sleep(2)
        raise RuntimeError(f"the service did not answer on port {self.port} within {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = (self.dir / "serve.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> list[int]:
        """SIGINT, kill after STOP_S; then kill what is left of its processes. The pids killed at the end."""
        left: list[int] = []
        if self.process is not None:
            self.started |= descendants(self.process.pid)
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
            time.sleep(2)
            left = [pid for pid in sorted(self.started) if _alive(pid)]
            for pid in left:
                _kill(pid)
        self.tmp.cleanup()
        return left


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


# --- main ----------------------------------------------------------------------------------


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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.requests is not None and args.requests < 1:
        parser.error("--requests must be at least 1")
    usernames = [f"{args.users_prefix}{i}" for i in range(max(args.clients))]
    if not args.start_dev:
        if args.create_users:
            from serve_app.storage.location import storage_settings

            print(f"created {create_users(storage_settings(args).database_url, usernames, args.password)} user(s)")
        return run_rounds(args, usernames, args.host, args.port, None)
    service = DevService()
    try:
        service.start()
        started = time.monotonic()
        service.wait_ready("127.0.0.1")
        print(f"dev service on port {service.port} answered after {time.monotonic() - started:.0f} s", flush=True)
        print(f"created {create_users(service.database_url, usernames, args.password)} user(s)", flush=True)
        return run_rounds(args, usernames, "127.0.0.1", service.port, service.process.pid)
    finally:
        left = service.stop()
        if left:
            print(f"killed {len(left)} process(es) left by serve run: {left}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
