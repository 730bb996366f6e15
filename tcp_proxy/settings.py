"""The TCP server's settings: the `proxy` section of the service's config.

Types, ranges and choices are declared on the fields (`tcp_proxy.field_checks`);
`__post_init__` enforces them and the rules that tie fields together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Gt, Le, Lt

from .field_checks import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, SettingError, check_fields
from .proxy_protocol import parse_trusted


@dataclass(frozen=True)
class ProxySettings:
    host: str = "0.0.0.0"
    port: Annotated[int, Ge(0), Le(65535)] = 4567  # fixed by deployed clients; 0: any free port
    max_payload_bytes: PositiveInt = 512 * 1024 * 1024  # larger frames are refused from the header
    read_timeout_s: PositiveFloat = 60.0  # longest silence between bytes of one request
    idle_timeout_s: PositiveFloat = 300.0  # longest silence between requests (never while one is computed)
    idle_timeout_before_login_s: PositiveFloat = 30.0  # the same until a login: the app sends its request on connecting
    first_byte_timeout_s: PositiveFloat = 10.0  # a new connection sends its first byte within this (the app at once)
    small_frame_timeout_s: PositiveFloat = 10.0  # LOGIN, GET_GLB, LIST complete within this of their first byte
    min_upload_bytes_per_s: PositiveFloat = 16 * 1024  # IMAGE/VIDEO average after the grace (128 kbit/s: a poor 3G link)
    upload_grace_s: NonNegativeFloat = 30.0  # before the upload rate counts (a phone waking its radio)
    max_discard_bytes: PositiveInt = 1 << 31  # of an over-limit upload, read and dropped so its sender reads the error
    max_discard_s: PositiveFloat = 60.0  # and at most this long (2 GiB takes 60 s at 36 MB/s; a dribbler frees its slot)
    max_connections: PositiveInt = 1024  # idle sockets are cheap for asyncio; the per-address cap bounds each client
    max_connections_per_address: PositiveInt = 32  # generous for a carrier NAT, small enough that 8 addresses hold < 1/4
    max_pending_reconstructions: NonNegativeInt = 32  # queued + running, all clients: bounds uploads held at once
    max_upload_bytes_in_flight: PositiveInt = 8 << 30  # announced payloads of pending IMAGE/VIDEO together (spool disk)
    max_pending_per_user: PositiveInt = 4  # one user's queued + running: no one takes every slot
    max_wait_s: PositiveFloat = 60.0  # refuse (ERROR_BUSY) when a new reconstruction would wait longer than this
    session_ttl_s: PositiveFloat = 3600.0  # how long a LOGIN binds the user to its address
    bind_sessions_to_ip: bool = True  # the Android app reconnects per request
    # an IPv6 client is the network of this many bits around its address (the per-address cap, the
    # login throttle, sessions): a subscriber is given a /64 and may rotate its address inside it
    ipv6_prefix_length: Annotated[int, Ge(32), Le(128)] = 64
    require_vip_for_video: bool = True  # server-side check of what the app enforces
    list_limit: NonNegativeInt = 100  # LIST answers at most this many GLBs (the newest)
    max_downloads: PositiveInt = 32  # GET_GLB replies being sent at once (each holds a file and one 256 KiB piece)
    max_downloads_per_address: PositiveInt = 4  # of those, to one address: the app takes one GLB at a time, a small NAT a few
    min_download_bytes_per_s: PositiveFloat = 16 * 1024  # a reply must be taken at this average rate, after the grace
    download_grace_s: NonNegativeFloat = 30.0
    # larger GLBs are refused; the app reads lengths as signed 32-bit ints
    max_result_bytes: Annotated[int, Gt(0), Lt(1 << 31)] = 1 << 30
    spool_dir: str = ""  # uploads are streamed here; "" = system temp dir
    proxy_protocol_from: str = ""  # balancers (addresses/networks, comma-separated) that send a PROXY header first
    tls_cert_file: str = ""  # PEM certificate chain: with tls_key_file, the listener speaks TLS (not the shipped app)
    tls_key_file: str = ""
    handover_s: NonNegativeFloat = 30.0  # on shutdown, keep accepting until a successor listens on the port, at most this long
    drain_timeout_s: PositiveFloat = 600.0  # on shutdown, requests under way get this long to finish (a CPU reconstruction can take minutes)

    def __post_init__(self) -> None:
        check_fields(self, "proxy")
        try:
            parse_trusted(self.proxy_protocol_from)
        except ValueError as exc:
            raise SettingError("proxy.proxy_protocol_from", str(exc)) from None
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise SettingError(
                "proxy.tls_key_file" if self.tls_cert_file else "proxy.tls_cert_file",
                "settings proxy.tls_cert_file and proxy.tls_key_file go together: give both or neither",
            )
