"""Free TCP ports for the services a check, test or benchmark starts, outside the kernel's ephemeral range.

A port from bind(0) comes from the ephemeral range (`ip_local_port_range`),
from which the many processes of a Ray cluster also take theirs: between our
pick and the service's own bind, one of them may take it. So ports are picked
at random from `PICK_FROM` with the ephemeral range (as the kernel reports it
now) left out, and bound once to check that they are free. `PICK_FROM` starts
above Ray's worker ports (10002-19999 by default).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LINUX_EPHEMERAL = (32768, 60999)  # the kernel's default, where the file cannot be read (not Linux)
PICK_FROM = (20000, 65535)  # inclusive
TRIES = 200


def ephemeral_range(path: Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral port range, both ends included; Linux's default where `path` cannot be read."""
    try:
        low, high = (int(field) for field in path.read_text().split())
    except (OSError, ValueError):
        return LINUX_EPHEMERAL
    return low, high


def candidate_ports(ephemeral: tuple[int, int], taken: tuple[int, ...] = ()) -> list[int]:
    """The ports of `PICK_FROM` outside `ephemeral` (ends included) and not in `taken`, in order."""
    low, high = ephemeral
    return [port for port in range(PICK_FROM[0], PICK_FROM[1] + 1) if not low <= port <= high and port not in taken]


def free_port(taken: tuple[int, ...] = (), *, ephemeral: tuple[int, int] | None = None) -> int:
    """A TCP port free now outside the ephemeral range (default: the kernel's) and not in `taken`
    (ports picked already and not bound yet)."""
    span = ephemeral or ephemeral_range()
    candidates = candidate_ports(span, taken)
    if not candidates:
        raise RuntimeError(f"no port of {PICK_FROM[0]}-{PICK_FROM[1]} is outside the ephemeral range {span[0]}-{span[1]}")
    for port in random.sample(candidates, min(TRIES, len(candidates))):
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free TCP port found in {TRIES} tries outside the ephemeral range")
