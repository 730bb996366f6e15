"""The TCP server's settings: the `proxy` section of the service's config."""

from __future__ import annotations

from dataclasses import dataclass

from .proxy_protocol import parse_trusted


@dataclass(frozen=True)
class ProxySettings:
    host: str = "0.0.0.0"
    port: int = 4567  # fixed by deployed clients
    max_payload_bytes: int = 512 * 1024 * 1024  # larger frames are refused from the header
    read_timeout_s: float = 60.0  # longest silence between bytes of one request
    idle_timeout_s: float = 300.0  # longest silence between requests (never while one is computed)
    first_byte_timeout_s: float = 10.0  # a new connection sends its first byte within this (the app at once)
    small_frame_timeout_s: float = 10.0  # LOGIN, GET_GLB, LIST complete within this of their first byte
    min_upload_bytes_per_s: float = 16 * 1024  # IMAGE/VIDEO average after the grace (128 kbit/s: a poor 3G link)
    upload_grace_s: float = 30.0  # before the upload rate counts (a phone waking its radio)
    max_discard_bytes: int = 1 << 31  # of an over-limit upload, read and dropped so its sender reads the error
    max_connections: int = 1024  # idle sockets are cheap for asyncio; the per-address cap bounds each client
    max_connections_per_address: int = 32  # generous for a carrier NAT, small enough that 8 addresses hold < 1/4
    max_pending_reconstructions: int = 32  # queued + running, all clients: bounds uploads held at once
    max_upload_bytes_in_flight: int = 8 << 30  # announced payloads of pending IMAGE/VIDEO together (spool disk)
    max_pending_per_user: int = 4  # one user's queued + running: no one takes every slot
    max_wait_s: float = 60.0  # refuse (ERROR_BUSY) when a new reconstruction would wait longer than this
    session_ttl_s: float = 3600.0  # how long a LOGIN binds the user to its address
    bind_sessions_to_ip: bool = True  # the Android app reconnects per request
    require_vip_for_video: bool = True  # server-side check of what the app enforces
    list_limit: int = 100  # LIST answers at most this many GLBs (the newest)
    max_downloads: int = 32  # GET_GLB replies being sent at once (each holds a file and one 256 KiB piece)
    min_download_bytes_per_s: float = 16 * 1024  # a reply must be taken at this average rate, after the grace
    download_grace_s: float = 30.0
    max_result_bytes: int = 1 << 30  # larger GLBs are refused: the app reads lengths as signed 32-bit ints
    spool_dir: str = ""  # uploads are streamed here; "" = system temp dir
    proxy_protocol_from: str = ""  # balancers (addresses/networks, comma-separated) that send a PROXY header first
    tls_cert_file: str = ""  # PEM certificate chain: with tls_key_file, the listener speaks TLS (not the shipped app)
    tls_key_file: str = ""
    handover_s: float = 30.0  # on shutdown, keep accepting until a successor listens on the port, at most this long
    drain_timeout_s: float = 600.0  # on shutdown, requests under way get this long to finish (a CPU reconstruction can take minutes)

    def __post_init__(self) -> None:
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"setting proxy.port must be a TCP port, 0..65535 (0: any free one), got {self.port!r}")
        for name in (
            "max_payload_bytes",
            "read_timeout_s",
            "idle_timeout_s",
            "max_connections",
            "session_ttl_s",
            "max_wait_s",
            "max_pending_per_user",
            "drain_timeout_s",
            "first_byte_timeout_s",
            "small_frame_timeout_s",
            "min_upload_bytes_per_s",
            "max_connections_per_address",
            "max_downloads",
            "min_download_bytes_per_s",
            "max_discard_bytes",
            "max_upload_bytes_in_flight",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"setting proxy.{name} must be positive, got {value!r}")
        for name in ("handover_s", "upload_grace_s", "download_grace_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"setting proxy.{name} must be 0 or more, got {value!r}")
        parse_trusted(self.proxy_protocol_from)  # raises on a bad address
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("settings proxy.tls_cert_file and proxy.tls_key_file go together: give both or neither")
        if not 0 < self.max_result_bytes < 1 << 31:
            raise ValueError(f"setting proxy.max_result_bytes must be in 1..2147483647, got {self.max_result_bytes!r}")
        for name in ("max_pending_reconstructions", "list_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"setting proxy.{name} must be 0 or more, got {value!r}")

