"""Free TCP ports on this machine for the services a check or benchmark starts."""

from __future__ import annotations

import random
import socket


def free_port() -> int:
    """A loopback port free now, as the kernel hands it out (bind to port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_outside_ephemeral(taken: tuple[int, ...] = ()) -> int:
    """A TCP port free now, outside the kernel's ephemeral range (32768-60999 on Linux).

    Ports from bind(0) come from the ephemeral range, from which the many processes of a
    Ray cluster also take theirs: between our pick and the bind, one may take it.
    """
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 30000)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free TCP port in 20000-29999")
