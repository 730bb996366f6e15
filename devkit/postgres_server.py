"""A throwaway PostgreSQL server for the tests and the multinode check.

`PostgresServer.start()` runs initdb and `pg_ctl start` in a fresh temporary
folder: the server listens on a free TCP port of 127.0.0.1 only (its unix
socket stays inside that folder) and trusts every loopback connection.
`stop()` stops it and deletes the folder. PostgreSQL refuses to run as root,
so under root its programs run as the `postgres` system user, which then owns
the folder.

The server programs are looked for in `$PG_BIN`, else the newest
`/usr/lib/postgresql/<version>/bin` (Debian's layout), else on `PATH`.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from devkit.ports import free_port

SERVER_USER = "postgres"  # the account the server runs as when the tests run as root
START_TIMEOUT_S = 30
COMMAND_TIMEOUT_S = START_TIMEOUT_S + 30
START_ATTEMPTS = 3  # a port found free may be taken before the server binds it
# Speed over durability: the data is thrown away afterwards.
SERVER_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
HBA_RULES = "local all all trust\nhost all all 127.0.0.1/32 trust\n"


def find_bin_dir() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None when they are not installed."""
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_of, reverse=True)
    candidates.extend(debian)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _version_of(bin_dir: Path) -> int:
    name = bin_dir.parent.name
    return int(name) if name.isdigit() else 0


class PostgresServer:
    """One PostgreSQL server in its own temporary folder, and fresh databases on it."""

    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="pg-test-"))
        self.data_dir = self.root / "data"
        self.socket_dir = self.root / "sockets"
        self.log_file = self.root / "server.log"
        self.port: int | None = None
        self._as_server_user = os.geteuid() == 0
        self._database_numbers = itertools.count(1)

    def start(self) -> None:
        """initdb, then start the server and wait (at most START_TIMEOUT_S) until it accepts connections."""
        self.socket_dir.mkdir()
        if self._as_server_user:
            account = pwd.getpwnam(SERVER_USER)
            for path in (self.root, self.socket_dir):
                os.chown(path, account.pw_uid, account.pw_gid)
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        (self.data_dir / "pg_hba.conf").write_text(HBA_RULES)  # initdb made it; its owner stays
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 {SERVER_OPTIONS}"
            try:
                self._pg_ctl("start", "-l", str(self.log_file), "-o", options)
                return
            except RuntimeError:
                if attempt == START_ATTEMPTS:
                    raise RuntimeError(f"PostgreSQL did not start; its log:\n{self.server_log()}") from None

    def halt(self) -> None:
        """Stop the server at once, keeping its data and port, as a database that goes away (`resume`)."""
        self._pg_ctl("stop", "-m", "immediate")

    def resume(self) -> None:
        """Start a halted server again on its port."""
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1 {SERVER_OPTIONS}"
        self._pg_ctl("start", "-l", str(self.log_file), "-o", options)

    def stop(self) -> None:
        """Stop the server (fast, without waiting for clients) and delete its folder."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._pg_ctl("stop", "-m", "immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of `database` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database_url(self) -> str:
        """Create an empty database no one else uses and return its URL."""
        import psycopg

        name = f"test_{next(self._database_numbers)}"
        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def server_log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def _pg_ctl(self, action: str, *options: str) -> None:
        self._run("pg_ctl", action, "-D", str(self.data_dir), "-w", "-t", str(START_TIMEOUT_S), *options)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self._as_server_user:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, cwd=self.root)
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()}")
