"""How many sockets listen on a TCP port of this host (Linux's /proc/net/tcp and tcp6).

A replica that shuts down keeps accepting until its successor listens on
the same port (both bind with SO_REUSEPORT), so a redeploy never leaves the
port without a listener. A server started without sharing (`start_server(...,
share_port=False)`, the standalone proxy unless told otherwise) is refused a
port already listened on. Where /proc is not there, the count is unknown.
"""

from __future__ import annotations

from pathlib import Path

PROC_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
LISTEN_STATE = "0A"


def listening_sockets(port: int, tables: tuple[Path, ...] = PROC_TABLES) -> int | None:
    """Sockets in LISTEN state on `port` (any address), or None when the tables cannot be read."""
    count, readable = 0, False
    for table in tables:
        try:
            lines = table.read_text().splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == LISTEN_STATE and int(fields[1].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count if readable else None
