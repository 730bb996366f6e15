"""Memory under sustained load: phone-like clients for a long time, RSS of every replica each minute.

    .venv/bin/python scripts/soak.py --start-dev --clients 20 --users 1 --minutes 60

Each client logs in once on a connection of its own, then sends one request
per new connection, from a loopback source address of its own (as in
`devkit.load`): an IMAGE of `--photos` generated photos made unique per
request (the result cache never answers), and every `--glb-every`-th request
a GET_GLB of the client's latest result instead. With few users and many
clients most IMAGE requests get ERROR_BUSY from the per-user cap
(`proxy.max_pending_per_user`); that is part of the load.

Every `--read-s` seconds (5) the RSS of each Serve replica process is read
from /proc (the replicas of the service `--start-dev` started, else every
replica of this machine), summed per deployment (the name on the replica's
command line), as `RSS (anonymous + shared)` MiB: the shared part is pages of
Ray's object store the replica has mapped. The `object store` column is how
much of the store's file is in memory (counted once for the node, in no
replica; `-` where /proc/PID/map_files cannot be read). The table has one row every `--sample-s` seconds (60): per
deployment the reading of lowest RSS among those of that minute (what it
holds between requests: requests in flight at some readings do not move it,
memory it keeps raises it), the outcome counts so far.

The verdict compares, per deployment, the median RSS of the last quarter of
the run with the median of the quarter before it, i.e. the second half of the
run split in two. Growth over
`--max-growth` (5 %) fails the run: exit status 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from devkit import load
from devkit.dev_service import run_with_dev_service
from devkit.media import synthetic_photos
from devkit.processes import replica_processes
from devkit.users import create_users
from serve_app.deployments.stage_deployment import object_store_mappings
from tcp_proxy.codec import GET_GLB, IMAGE, LOGIN

MiB = 1024 * 1024
DEPLOYMENT = re.compile(r"ServeReplica:[^:\s]+:([A-Za-z0-9_]+)")


# --- what runs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SoakPlan:
    """The clients of a soak and what each sends."""

    host: str
    port: int
    clients: int
    usernames: list[str]  # client i logs in as usernames[i % len(usernames)]
    password: str
    photos: list[bytes]
    glb_every: int = 10  # every n-th request of a client is a GET_GLB of its latest result
    timeout: float = 600.0


@dataclass
class Outcomes:
    """Outcome counts of every client, by (command, result); thread-safe."""

    counts: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: load.Outcome) -> None:
        with self.lock:
            self.counts[(load.LABELS[outcome.command], outcome.result)] += 1

    def snapshot(self) -> Counter:
        with self.lock:
            return Counter(self.counts)

    @staticmethod
    def by_result(counts: Counter) -> Counter:
        totals: Counter = Counter()
        for (_command, result), n in counts.items():
            totals[result] += n
        return totals


def next_command(done: int, glb_every: int, latest: str) -> int:
    """The command of a client's request number `done` (0-based, after its LOGIN)."""
    if glb_every and (done + 1) % glb_every == 0 and latest:
        return GET_GLB
    return IMAGE


def soak_client(plan: SoakPlan, index: int, stop: threading.Event, outcomes: Outcomes) -> None:
    """LOGIN, then IMAGE (GET_GLB every `plan.glb_every`-th) on a new connection each, until `stop`."""
    source, username = load.source_address(index), plan.usernames[index % len(plan.usernames)]
    send = {"password": plan.password, "timeout": plan.timeout}
    outcomes.add(load.send_request(plan.host, plan.port, source, load.Request(LOGIN, text=username), **send))
    latest, done = "", 0
    while not stop.is_set():
        if next_command(done, plan.glb_every, latest) == GET_GLB:
            request = load.Request(GET_GLB, text=latest)
        else:
            tag = f"{username}:{index}:{done}:{time.time_ns()}"
            request = load.Request(IMAGE, images=[load.unique_jpeg(p, f"{tag}:{i}") for i, p in enumerate(plan.photos)])
        outcome = load.send_request(plan.host, plan.port, source, request, **send)
        outcomes.add(outcome)
        latest = outcome.name or latest
        done += 1


# --- memory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One reading: seconds since the start, {deployment: (rss, anon, shmem) bytes}, outcomes so far."""

    seconds: float
    memory: dict[str, tuple[int, int, int]]
    outcomes: Counter
    store: int = 0  # pages of Ray's object store file in memory, bytes (0: not found)


def deployment_of(cmdline: str) -> str:
    found = DEPLOYMENT.search(cmdline)
    return found.group(1) if found else cmdline.split()[0]


def memory_status(pid: int) -> tuple[int, int, int]:
    """(RSS, its anonymous part, its shared-memory part) of `pid` in bytes; zeros when it is gone."""
    fields = {"VmRSS:": 0, "RssAnon:": 0, "RssShmem:": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(":", 1)[0] + ":"
            if key in fields:
                fields[key] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return fields["VmRSS:"], fields["RssAnon:"], fields["RssShmem:"]


def object_store_bytes(pids) -> int:
    """Bytes in memory of Ray's object store file, read through the first of `pids` that maps it (0: none)."""
    for pid in pids:
        for start, length in object_store_mappings(f"/proc/{pid}/maps"):
            try:
                return os.stat(f"/proc/{pid}/map_files/{start:x}-{start + length:x}").st_blocks * 512
            except OSError:
                break
    return 0


Reading = tuple[dict[str, tuple[int, int, int]], int]  # {deployment: (RSS, anon, shmem)}, object store bytes


def read_memory(root: int | None) -> Reading:
    """What the replicas (below `root` when given) and the object store hold now."""
    replicas = replica_processes(root)
    memory: dict[str, tuple[int, int, int]] = {}
    for pid, cmdline in replicas.items():
        name, here = deployment_of(cmdline), memory_status(pid)
        total = memory.get(name, (0, 0, 0))
        memory[name] = (total[0] + here[0], total[1] + here[1], total[2] + here[2])
    return dict(sorted(memory.items())), object_store_bytes(replicas)


def take_sample(seconds: float, readings: list[Reading], outcomes: Outcomes) -> Sample:
    """The sample of one interval: per deployment its reading of lowest RSS (what the replica holds between
    requests: the requests under way at other readings do not move it; a leak raises it), the store's largest."""
    names = sorted({name for memory, _ in readings for name in memory})
    memory = {}
    for name in names:
        memory[name] = min(m[name] for m, _ in readings if name in m)
    return Sample(seconds, memory, outcomes.snapshot(), max((store for _, store in readings), default=0))


def growth(values: list[int]) -> float | None:
    """Relative growth over the second half of `values`: median of its last half against median of its first."""
    half = values[len(values) // 2 :]
    if len(half) < 2:
        return None
    split = len(half) // 2
    before, after = statistics.median(half[:split]), statistics.median(half[split:])
    return (after - before) / before if before else None


def growth_by_deployment(samples: list[Sample]) -> dict[str, float | None]:
    names = sorted({name for s in samples for name in s.memory})
    return {name: growth([s.memory[name][0] for s in samples if name in s.memory]) for name in names}


# --- the table ---------------------------------------------------------------------------------


def table_header(names: list[str]) -> str:
    columns = ["minute", *(f"{n} MiB" for n in names), "object store MiB", "OK", "ERROR_BUSY", "other", "dropped"]
    return "| " + " | ".join(columns) + " |\n|" + " --- |" * len(columns)


def table_row(sample: Sample, names: list[str]) -> str:
    totals = Outcomes.by_result(sample.outcomes)
    other = sum(totals.values()) - totals[load.OK] - totals[load.BUSY] - totals[load.DROPPED]
    cells = [f"{sample.seconds / 60:.0f}"]
    for name in names:
        rss, anon, shmem = sample.memory.get(name, (0, 0, 0))
        cells.append(f"{rss / MiB:.0f} ({anon / MiB:.0f}+{shmem / MiB:.0f})" if rss else "-")
    cells.append(f"{sample.store / MiB:.0f}" if sample.store else "-")
    cells += [str(totals[load.OK]), str(totals[load.BUSY]), str(other), str(totals[load.DROPPED])]
    return "| " + " | ".join(cells) + " |"


def verdict(samples: list[Sample], max_growth: float) -> tuple[list[str], bool]:
    """Lines naming each deployment's growth over the last half, and whether every one stayed within `max_growth`."""
    lines, flat = [], True
    for name, change in growth_by_deployment(samples).items():
        if change is None:
            lines.append(f"{name}: too few samples to judge")
            flat = False
            continue
        over = change > max_growth
        flat &= not over
        lines.append(f"{name}: {change * 100:+.1f} % over the last half{' (over the limit)' if over else ''}")
    return lines, flat


# --- the run ------------------------------------------------------------------------------------


def soak(plan: SoakPlan, seconds: float, sample_s: float, root: int | None, read_s: float = 5.0) -> list[Sample]:
    """Run the clients for `seconds`, reading memory every `read_s` and printing a row every `sample_s`;
    the samples (the first at the start)."""
    stop, outcomes = threading.Event(), Outcomes()
    threads = [
        threading.Thread(target=soak_client, args=(plan, i, stop, outcomes), daemon=True) for i in range(plan.clients)
    ]
    started = time.monotonic()
    samples = [take_sample(0.0, [read_memory(root)], outcomes)]
    names = sorted(samples[0].memory)
    print(table_header(names), flush=True)
    print(table_row(samples[0], names), flush=True)
    for t in threads:
        t.start()
    readings: list[Reading] = []
    row_at = sample_s
    while (elapsed := time.monotonic() - started) < seconds:
        time.sleep(max(0.0, min(read_s, row_at - elapsed, seconds - elapsed)))
        readings.append(read_memory(root))
        elapsed = time.monotonic() - started
        if elapsed >= row_at or elapsed >= seconds:
            samples.append(take_sample(elapsed, readings, outcomes))
            print(table_row(samples[-1], names), flush=True)
            readings, row_at = [], row_at + sample_s
    stop.set()
    for t in threads:
        t.join(plan.timeout)
    samples[-1] = dataclasses.replace(samples[-1], outcomes=outcomes.snapshot())
    return samples


def report(samples: list[Sample], max_growth: float) -> int:
    """Print the outcome counts by command and the growth verdict; 0 when every replica stayed flat."""
    counts = samples[-1].outcomes
    print("outcomes: " + ", ".join(f"{cmd} {result} x{n}" for (cmd, result), n in sorted(counts.items())))
    lines, flat = verdict(samples, max_growth)
    store = growth([s.store for s in samples if s.store])
    if store is not None:
        lines.append(f"object store (not judged): {store * 100:+.1f} % over the last half")
    for line in lines:
        print(line)
    if not flat:
        print(
            f"FAILED: a replica grew more than {max_growth * 100:.0f} % over the last half",
            file=sys.stderr,
        )
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    usernames = [f"{args.users_prefix}{i}" for i in range(args.users)]
    photos = synthetic_photos(args.photos, 320, 240)
    print(
        f"soak: {args.clients} clients, {args.users} user(s), {args.minutes:g} min, "
        f"IMAGE of {args.photos} photos, GET_GLB every {args.glb_every}th request",
        flush=True,
    )

    def go(host: str, port: int, root: int | None) -> int:
        plan = SoakPlan(host, port, args.clients, usernames, args.password, photos, args.glb_every, args.timeout)
        return report(soak(plan, args.minutes * 60, args.sample_s, root, args.read_s), args.max_growth)

    if not args.start_dev:
        return go(args.host, args.port, None)

    def with_service(service) -> int:
        created = create_users(service.database_url, load.vip_users(usernames), args.password)
        print(f"created {created} user(s); tiny model on CPU (config/serve.dev.yaml)", flush=True)
        return go("127.0.0.1", service.port, service.process.pid)

    return run_with_dev_service(with_service)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Soak of the reconstruction service: replica memory under sustained load.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4567)
    p.add_argument("--start-dev", action="store_true", help="start the dev service (serve.dev.yaml) for the run")
    p.add_argument("--clients", type=_positive(int), default=20)
    p.add_argument("--users", type=_positive(int), default=1, help="client i logs in as user i %% users")
    p.add_argument("--minutes", type=_positive(float), default=60.0)
    p.add_argument("--sample-s", type=_positive(float), default=60.0, help="seconds between table rows")
    p.add_argument("--read-s", type=_positive(float), default=5.0, help="seconds between memory readings")
    p.add_argument("--photos", type=_positive(int), default=3, help="photos per IMAGE request")
    p.add_argument("--glb-every", type=int, default=10, help="every n-th request is a GET_GLB (0: never)")
    p.add_argument("--max-growth", type=float, default=0.05, help="allowed growth over the last half (0.05 = 5 %%)")
    p.add_argument("--users-prefix", default="soak")
    p.add_argument("--password", default="soak-password")
    p.add_argument("--timeout", type=_positive(float), default=600.0, help="socket timeout of every request, s")
    return p


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse
