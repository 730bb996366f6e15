"""Client of the reconstruction service's TCP protocol: a small library and a CLI (`vggt-client`).

    vggt-client --host 127.0.0.1 --port 4567 --user demo --password 123456 images a.jpg b.jpg --out model.glb
    vggt-client --user vip --password ... video clip.mp4
    vggt-client --user demo --password 123456 images photos/   # a folder: its photos in name order
    vggt-client get <hash> --out model.glb
    vggt-client --user demo --password 123456 list      # your stored GLBs, newest first

(`python scripts/client.py ...` runs the same from a checkout.)

By default the login and the request share one connection; `--reconnect`
opens one connection per request instead, as the Android app does (the
server then relies on its address binding; `list` always stays on the
connection it logged in on, as LIST requires). Uploads show a progress bar on
stderr (`--quiet` hides it). Library use:

    with Client("127.0.0.1", 4567) as c:
        c.login("demo", "123456")
        name, glb = c.images(["a.jpg", "b.jpg"])
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import socket
import struct
import sys
from pathlib import Path
from typing import BinaryIO, Iterable, Sequence, Union

from .codec import GET_GLB, IMAGE, LIST, LOGIN, MAX_NAME_BYTES, VIDEO
from .photo_files import PHOTO_SUFFIXES, folder_photos

CHUNK = 1024 * 1024
ImageSource = Union[str, os.PathLike, bytes]
class ServerError(Exception):
    """The server answered with an error code (ERROR_..., UNKNOWN_COMMAND)."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


class ProtocolViolation(Exception):
    """The server's reply does not have the documented shape."""


def _progress(total: int, enabled: bool, label: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label, disable=not enabled, leave=False)


class Client:
    """One connection to the service; requests are answered in order."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4567, *, timeout: float | None = None):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock: socket.socket | None = None

    def __enter__(self) -> "Client":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self.sock.settimeout(self.timeout)  # None: wait as long as a reconstruction takes

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # -- requests --------------------------------------------------------
    def login(self, username: str, password: str) -> tuple[bool, bool]:
        """(ok, is_vip); the session then covers this connection (and this address)."""
        payload = json.dumps({"u": username, "p": password}).encode("utf-8")
        self._send_frame(LOGIN, payload)
        reply = json.loads(self._read_block().decode("utf-8"))
        if not (isinstance(reply, list) and len(reply) >= 2 and all(isinstance(v, bool) for v in reply[:2])):
            raise ProtocolViolation(f"unexpected LOGIN reply {reply!r}")
        return reply[0], reply[1]

    def images(self, sources: Sequence[ImageSource], *, progress: bool = False) -> tuple[str, bytes]:
        """Upload image files (paths or bytes); (name, glb) of the reconstruction."""
        blobs = [s if isinstance(s, bytes) else Path(s).read_bytes() for s in sources]
        length = 4 + sum(4 + len(b) for b in blobs)
        parts: list[bytes] = [struct.pack(">I", len(blobs))]
        for blob in blobs:
            parts += [struct.pack(">I", len(blob)), blob]
        self._send_stream(IMAGE, length, iter(parts), progress, "images")
        return self._read_reconstruction()

    def video(self, path: str | os.PathLike, *, progress: bool = False) -> tuple[str, bytes]:
        """Upload a video file, streamed from disk; (name, glb) of the reconstruction."""
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            self._send_stream(VIDEO, size, _read_chunks(f), progress, "video")
        return self._read_reconstruction()

    def get(self, hash_text: str) -> bytes:
        """The GLB shared under `hash_text` (no login needed)."""
        self._send_frame(GET_GLB, hash_text.encode("utf-8"))
        data = self._read_block()
        if len(data) < 1024 and data.startswith(b"ERROR_"):
            raise ServerError(data.decode("ascii", errors="replace"))
        return data

    def list(self) -> list[dict]:
        """The stored GLBs of the user logged in on this connection, newest first: hash, original_name,
        file_size, created_at."""
        self._send_frame(LIST, b"")
        data = self._read_block()
        if len(data) < 1024 and data.startswith((b"ERROR_", b"UNKNOWN_COMMAND")):
            raise ServerError(data.decode("ascii", errors="replace"))
        entries = json.loads(data.decode("utf-8"))
        if not isinstance(entries, list) or not all(isinstance(e, dict) and "hash" in e for e in entries):
            raise ProtocolViolation(f"unexpected LIST reply {data[:200]!r}")
        return entries

    # -- wire ------------------------------------------------------------
    def _socket(self) -> socket.socket:
        self.connect()
        assert self.sock is not None
        return self.sock

    def _send_frame(self, command: int, payload: bytes) -> None:
        self._socket().sendall(struct.pack(">BI", command, len(payload)) + payload)

    def _send_stream(self, command: int, length: int, parts: Iterable[bytes], progress: bool, label: str) -> None:
        sock = self._socket()
        sock.sendall(struct.pack(">BI", command, length))
        with _progress(length, progress, label) as bar:
            for part in parts:
                view = memoryview(part)
                for start in range(0, len(view), CHUNK):
                    piece = view[start : start + CHUNK]
                    try:
                        sock.sendall(piece)
                    except (BrokenPipeError, ConnectionResetError):
                        self._raise_early_reply()
                        raise
                    bar.update(len(piece))

    def _raise_early_reply(self) -> None:
        """The server stopped reading (e.g. payload too large): surface its error reply if any."""
        try:
            self._read_reconstruction()
        except ServerError:
            raise
        except Exception:
            return

    def _recv_exact(self, n: int) -> bytes:
        sock = self._socket()
        buf = bytearray()
        while len(buf) < n:
            chunk = sock.recv(min(n - len(buf), CHUNK))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(buf)} of {n} reply bytes")
            buf += chunk
        return bytes(buf)

    def _read_block(self) -> bytes:
        (n,) = struct.unpack(">I", self._recv_exact(4))
        return self._recv_exact(n)

    def _read_reconstruction(self) -> tuple[str, bytes]:
        (name_length,) = struct.unpack(">I", self._recv_exact(4))
        if name_length > MAX_NAME_BYTES:
            raise ProtocolViolation(f"name length {name_length} over {MAX_NAME_BYTES}")
        name = self._recv_exact(name_length).decode("utf-8")
        data = self._read_block()
        if name_length == 0:
            raise ServerError(data.decode("ascii", errors="replace"))
        return name, data


def _read_chunks(f: BinaryIO) -> Iterable[bytes]:
    while chunk := f.read(CHUNK):
        yield chunk


# -- CLI ------------------------------------------------------------------
PROG = "vggt-client"
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class InputError(Exception):
    """A local problem found before anything is sent (missing file, unwritable output, bad option)."""


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse prints the usage too; the CLI prints one line
        raise InputError(message)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description="Reconstruction service client (TCP protocol).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=4567)
    p.add_argument("--user", help="log in as this user first")
    p.add_argument("--password", help="password (asked for when --user is given without it)")
    p.add_argument("--reconnect", action="store_true", help="one connection per request, like the Android app")
    p.add_argument("--timeout", type=float, default=None, help="socket timeout in seconds (default: none)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("login", help="only log in and print [ok, is_vip]")
    s = sub.add_parser("images", help="reconstruct from photos (files, or one folder: its photos in name order)")
    s.add_argument("files", nargs="+", metavar="FILE_OR_FOLDER")
    s.add_argument("--out", help="where to save the GLB (default: <hash>.glb)")
    s = sub.add_parser("video", help="reconstruct from a video (VIP users)")
    s.add_argument("file")
    s.add_argument("--out", help="where to save the GLB (default: <hash>.glb)")
    s = sub.add_parser("get", help="download a GLB by its hash")
    s.add_argument("hash")
    s.add_argument("--out", help="where to save the GLB (default: <hash>.glb)")
    s = sub.add_parser("list", help="your stored GLBs, newest first (recovers results whose reply was lost)")
    s.add_argument("--json", action="store_true", help="print the server's JSON as is")
    return p


def photo_sources(paths: Sequence[str]) -> list[str]:
    """The photo files to send: a single folder's photos (name order), else the files as given."""
    if len(paths) == 1 and os.path.isdir(paths[0]):
        photos = folder_photos(paths[0])
        if not photos:
            raise InputError(f"no photos in {paths[0]} (accepted: {', '.join(PHOTO_SUFFIXES)})")
        return [str(path) for path in photos]
    return list(paths)


def check_inputs(args: argparse.Namespace) -> None:
    """Everything local that can be wrong, before connecting: files to send, where to write."""
    if args.command == "images":
        args.files = photo_sources(args.files)
    sources = args.files if args.command == "images" else [args.file] if args.command == "video" else []
    for source in sources:
        if os.path.isdir(source):
            what = "a video" if args.command == "video" else "a photo"
            raise InputError(f"{source} is a folder, not {what}")
        if not os.path.isfile(source) or not os.access(source, os.R_OK):
            raise InputError(f"cannot read {source}")
    out = getattr(args, "out", None)
    if out:
        folder = Path(out).parent
        if Path(out).is_dir():
            raise InputError(f"--out {out} is a folder; give a file name")
        if not folder.exists():
            raise InputError(f"--out: folder {folder} does not exist")
        if not folder.is_dir():
            raise InputError(f"--out: {folder} is a file, not a folder")
        if not os.access(folder, os.W_OK):
            raise InputError(f"--out {out}: cannot write into {folder}")


def connect_error(host: str, port: int, exc: OSError) -> str:
    """One line for a connection that could not be made."""
    if isinstance(exc, ConnectionRefusedError):
        reason = "connection refused"
    elif isinstance(exc, socket.timeout):
        reason = "timed out"
    elif isinstance(exc, socket.gaierror):
        reason = f"unknown host ({exc.strerror or exc})"
    else:
        reason = (exc.strerror or str(exc) or type(exc).__name__).lower()
    return f"cannot connect to {host}:{port}: {reason}"


def _fail(message: str, status: int) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return status


def run(args: argparse.Namespace) -> int:
    try:
        check_inputs(args)
    except InputError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    if args.command == "login" and not args.user:
        return _fail("login needs --user", EXIT_BAD_INPUT)
    client = Client(args.host, args.port, timeout=args.timeout)
    progress = not args.quiet
    try:
        try:
            client.connect()
        except OSError as exc:
            return _fail(connect_error(args.host, args.port, exc), EXIT_BAD_INPUT)
        if args.user:
            password = args.password if args.password is not None else getpass.getpass()
            ok, vip = client.login(args.user, password)
            if args.command == "login":
                print(json.dumps([ok, vip]))
                return EXIT_OK if ok else EXIT_FAILED
            if not ok:
                return _fail("login failed", EXIT_FAILED)
            if args.reconnect and args.command != "list":  # LIST counts only a LOGIN on its own connection
                client.close()
        if args.command == "list":
            return _print_list(client.list(), args.json)
        if args.command == "images":
            name, glb = client.images(args.files, progress=progress)
        elif args.command == "video":
            name, glb = client.video(args.file, progress=progress)
        else:
            text = args.hash.strip()
            glb = client.get(text)
            name = text if text.endswith(".glb") else f"{text}.glb"
    except ServerError as exc:
        return _fail(f"server error: {exc.code}", EXIT_FAILED)
    except ConnectionRefusedError as exc:  # --reconnect: the next connection was refused
        return _fail(connect_error(args.host, args.port, exc), EXIT_FAILED)
    except (OSError, ProtocolViolation) as exc:
        return _fail(f"connection problem: {exc}", EXIT_FAILED)
    finally:
        client.close()
    print(name, flush=True)  # the share hash first: it survives a failed write below
    path = args.out or name
    try:
        Path(path).write_bytes(glb)
    except OSError as exc:
        return _fail(f"cannot write {path}: {exc.strerror or exc}; fetch it again with: get {name}", EXIT_FAILED)
    print(f"{name} -> {path} ({len(glb)} bytes)")
    return EXIT_OK


def _print_list(entries: list[dict], as_json: bool) -> int:
    if as_json:
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return EXIT_OK
    for entry in entries:
        created = entry.get("created_at") or "-"
        print(f"{entry['hash']}.glb  {created}  {entry.get('file_size', 0):>12,} B  {entry.get('original_name', '')}")
    if not entries:
        print("no stored GLBs", file=sys.stderr)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except InputError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    return run(args)
