"""Run the TCP proxy on its own, in front of a running Ray Serve application.

    python -m serve_app.standalone_proxy --address auto --app vggt [--port 4568] [--config config/serve.yaml]

It joins the Ray cluster (`ray.init(address=...)`), reaches the application's
stage deployments through their handles (`serve_app.deployments.stage_handles`),
answers LOGIN and GET_GLB from the database and storage root of the settings
(`Accounts`), and serves the protocol until SIGINT/SIGTERM. Settings come
from the `args` of the application in a Serve config file (or a plain
settings mapping) when `--config` is given, else from the defaults;
`--host`/`--port` override the proxy's address (pick another port if the
application's ingress already listens on 4567).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from contextlib import suppress

from serve_app.config import AppSettings
from tcp_proxy.server import start_server

log = logging.getLogger("tcp_proxy")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m serve_app.standalone_proxy", description=__doc__.split("\n\n")[0])
    p.add_argument("--address", default="auto", help="Ray cluster address for ray.init (default: auto)")
    p.add_argument("--app", default="vggt", help="name of the running Serve application (default: vggt)")
    p.add_argument("--config", help="Serve config YAML (the app's args are used) or a settings YAML")
    p.add_argument("--host", help="listen address (default: proxy.host of the settings)")
    p.add_argument("--port", type=int, help="listen port (default: proxy.port of the settings)")
    p.add_argument("--log-level", default="INFO")
    return p.parse_args(argv)


def load_settings(path: str | None, app_name: str) -> AppSettings:
    """AppSettings from a Serve config (the named application's args) or a plain mapping."""
    if not path:
        return AppSettings()
    try:
        return AppSettings.from_file(path, app_name)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"{path}: {exc}") from None


async def serve(args: argparse.Namespace) -> None:
    import ray

    from serve_app.accounts import Accounts
    from serve_app.deployments import stage_handles
    from serve_app.serve_backend import ServeBackend

    settings = load_settings(args.config, args.app)
    ray.init(address=args.address, logging_level=logging.WARNING)
    accounts = await Accounts.open(settings)
    backend = ServeBackend(accounts, stage_handles(args.app), settings)
    server = await start_server(
        settings.proxy,
        backend,
        max_images=settings.frames.max_images,
        host=args.host,
        port=args.port,
        sessions=accounts,  # the same bindings as the application's own ingress
    )
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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
