"""Run the TCP proxy on its own, in front of a running Ray Serve application.

    vggt-proxy --address auto --app vggt [--port 4568] [--config config/serve.yaml] [--share-port]

(`python -m serve_app.standalone_proxy ...` runs the same.)

It joins the Ray cluster (`ray.init(address=...)`), reaches the application's
stage deployments through their handles (`serve_app.deployments.stage_runner.HandleStageRunner`),
answers LOGIN and GET_GLB from the database and storage root of the settings
(`Accounts`), and serves the protocol until SIGINT/SIGTERM. Settings come
from the `args` of the application in a Serve config file (or a plain
settings mapping) when `--config` is given, else from the defaults;
`--host`/`--port` override the proxy's address. A port something already
listens on (the application's own ingress, on 4567) is refused: sharing it
would split the clients between servers that each count only their own
against the per-instance limits; `--share-port` shares it all the same
(SO_REUSEPORT, as the application's replicas do during a redeploy). Bad
options, settings or a taken port are one line, `vggt-proxy: <what is
wrong>`, and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
from contextlib import suppress
from typing import TYPE_CHECKING

from serve_app.cli import EXIT_BAD_INPUT, InputError, OneLineParser, report
from serve_app.config import AppSettings
from tcp_proxy.server import ProxyServer, start_server

if TYPE_CHECKING:
    from serve_app.accounts import Accounts
    from serve_app.serve_backend import ServeBackend
    from tcp_proxy.backend import Backend
    from tcp_proxy.sessions import SessionStore

log = logging.getLogger("tcp_proxy")
PROG = "vggt-proxy"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options; bad ones raise InputError (one line)."""
    p = OneLineParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--address", default="auto", help="Ray cluster address for ray.init (default: auto)")
    p.add_argument("--app", default="vggt", help="name of the running Serve application (default: vggt)")
    p.add_argument("--config", help="Serve config YAML (the app's args are used) or a settings YAML")
    p.add_argument("--host", help="listen address (default: proxy.host of the settings)")
    p.add_argument("--port", type=int, help="listen port (default: proxy.port of the settings)")
    p.add_argument(
        "--share-port",
        action="store_true",
        help="listen even when another server (the application's ingress) listens on the port; "
        "each counts its limits on its own",
    )
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def load_settings(path: str | None, app_name: str) -> AppSettings:
    """AppSettings from a Serve config (the named application's args) or a plain mapping;
    a file that cannot be read or holds bad settings raises InputError naming it."""
    if not path:
        return AppSettings()
    try:
        return AppSettings.from_file(path, app_name)
    except OSError as exc:
        raise InputError(f"--config {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise InputError(f"--config {path}: {exc}") from None


async def open_backend(app_name: str, settings: AppSettings) -> tuple[ServeBackend, Accounts]:
    """The backend over running application `app_name` (Ray already initialised) and its accounts,
    which the caller closes."""
    from serve_app.accounts import Accounts
    from serve_app.deployments.stage_runner import HandleStageRunner
    from serve_app.serve_backend import ServeBackend

    accounts = await Accounts.open(settings)
    return ServeBackend(accounts, HandleStageRunner.of_app(app_name), settings), accounts


async def open_server(
    args: argparse.Namespace, settings: AppSettings, backend: Backend, sessions: SessionStore | None
) -> ProxyServer:
    """The protocol server listening on the address of the options (else the settings'); a port
    that cannot be listened on (taken, unless --share-port) raises InputError."""
    host = settings.proxy.host if args.host is None else args.host
    port = settings.proxy.port if args.port is None else args.port
    try:
        return await start_server(
            settings.proxy,
            backend,
            max_images=settings.frames.max_images,
            host=host,
            port=port,
            sessions=sessions,
            share_port=args.share_port,
        )
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise InputError(
                f"port {port} on {host} is already in use (the application's own ingress?); "
                "give another --port, or --share-port to share it"
            ) from None
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


async def connect(args: argparse.Namespace, settings: AppSettings) -> tuple[ServeBackend, Accounts]:
    """Join the Ray cluster of --address; the backend over the running application and its accounts."""
    import ray

    ray.init(address=args.address, logging_level=logging.WARNING)
    return await open_backend(args.app, settings)


async def serve(args: argparse.Namespace, settings: AppSettings) -> None:
    backend, accounts = await connect(args, settings)
    try:
        # the same session bindings as the application's own ingress
        server = await open_server(args, settings, backend, accounts)
    except InputError:
        accounts.close()
        raise
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("shutting down (%s)", server.stats())
        await server.close()
        accounts.close()


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
        level = logging.getLevelName(args.log_level.upper())
        if not isinstance(level, int):
            raise InputError(f"--log-level must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got {args.log_level}")
        settings = load_settings(args.config, args.app)
    except InputError as exc:
        report(PROG, str(exc))
        return EXIT_BAD_INPUT
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args, settings))
    except InputError as exc:
        report(PROG, str(exc))
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
