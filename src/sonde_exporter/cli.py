"""Command line, with blackbox_exporter's flag names, and the server's life cycle."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import math
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from . import __version__
from .config import ConfigError, describe_unsupported, load_config
from .exporter import Exporter
from .logs import LEVELS, configure, fields
from .server import create_app
from .websecurity import WebConfig, install_web_security, load_web_config

DEFAULT_LISTEN = ":10115"
logger = logging.getLogger("sonde_exporter")


class _HelpWithDefaults(argparse.HelpFormatter):
    """--help shows each flag's default, except for switches and repeatable flags."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help_text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "(default" in help_text:
            return help_text
        return f"{help_text} (default: %(default)s)"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="sonde-exporter",
        description="Blackbox prober for Prometheus: TCP, ICMP and email round-trip checks.",
        formatter_class=_HelpWithDefaults,
    )
    p.add_argument(
        "--config.file",
        dest="config_file",
        default="config.yml",
        metavar="FILE",
        help="configuration file",
    )
    p.add_argument(
        "--web.listen-address",
        dest="listen",
        action="append",
        metavar="ADDRESS",
        help=f"address to listen on, host:port or :port; repeatable (default: {DEFAULT_LISTEN})",
    )
    p.add_argument(
        "--timeout-offset",
        dest="timeout_offset",
        type=float,
        metavar="SECONDS",
        default=0.5,
        help="seconds subtracted from Prometheus' scrape timeout",
    )
    p.add_argument(
        "--config.check", dest="check", action="store_true", help="validate the config and exit"
    )
    p.add_argument(
        "--log.level",
        dest="log_level",
        choices=list(LEVELS),
        default="info",
        help="lowest level of the exporter's own log lines",
    )
    p.add_argument(
        "--log.format",
        dest="log_format",
        choices=["logfmt", "json"],
        default="logfmt",
        help="log line format",
    )
    p.add_argument(
        "--log.prober",
        dest="log_prober",
        choices=list(LEVELS),
        default="error",
        help="lowest level of per-probe log lines copied to the log; "
        "error logs one line per failed probe",
    )
    p.add_argument(
        "--history.limit",
        dest="history_limit",
        type=int,
        metavar="N",
        default=100,
        help="recent probes kept for the status page and /logs",
    )
    p.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="exporter-toolkit web config: TLS, client certificates, basic auth, rate limits, "
        "response headers; re-read when it changes (see README, Security)",
    )
    p.add_argument(
        "--web.enable-debug",
        dest="enable_debug",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="allow /probe?debug=true and /logs; --no-web.enable-debug answers them 403",
    )
    p.add_argument("--version", action="version", version=f"sonde-exporter {__version__}")
    args = p.parse_args(argv)
    if not math.isfinite(args.timeout_offset) or args.timeout_offset < 0:
        p.error("--timeout-offset must be a non-negative number of seconds")
    if args.history_limit < 0:
        p.error("--history.limit must not be negative")
    args.listen = [_split_listen(p, a) for a in (args.listen or [DEFAULT_LISTEN])]
    return args


def _split_listen(p: argparse.ArgumentParser, address: str) -> tuple[str | None, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        p.error(f"--web.listen-address {address!r}: expected host:port or :port")
    return (host.strip("[]") or None), int(port)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure(args.log_level, args.log_format, args.log_prober)
    config_file = Path(args.config_file)
    try:
        config = load_config(config_file)
        web_config = load_web_config(args.web_config_file)
    except ConfigError as exc:
        if args.check:
            print(exc, file=sys.stderr)
            return 1
        logger.error("Error loading config", extra=fields(err=str(exc)))
        return 1
    if args.check:
        if config.unsupported:
            print(
                f"{config_file}: warning: these modules load, but sonde-exporter does not have "
                f"their prober, so probing them answers 400: {describe_unsupported(config)}",
                file=sys.stderr,
            )
        print("OK")
        return 0
    exporter = Exporter(config_file, config, args.timeout_offset, args.history_limit)
    exporter.enable_debug = args.enable_debug
    try:
        asyncio.run(serve(exporter, args.listen, web_config))
    except OSError as exc:
        logger.error("Cannot listen", extra=fields(err=str(exc)))
        return 1
    return 0


async def serve(
    exporter: Exporter, listen: list[tuple[str | None, int]], web_config: WebConfig | None = None
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # Before listening: a SIGHUP sent once the port answers must reload, not kill.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, exporter.reload_soon)
    app = create_app(exporter)
    ssl_context = install_web_security(app, web_config, exporter.metrics)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        for host, port in listen:
            await web.TCPSite(
                runner, host, port, reuse_address=True, ssl_context=ssl_context
            ).start()
        for address in runner.addresses:  # the real ports, also when asked for port 0
            logger.info("Listening on address", extra=fields(address=_format_address(address)))
        logger.info(
            "Started sonde-exporter",
            extra=fields(version=__version__, modules=len(exporter.config.modules)),
        )
        settle_garbage_collector()
        await stop.wait()
        logger.info("Shutting down")
    finally:
        await runner.cleanup()


def settle_garbage_collector() -> None:
    """Move what start-up built (modules, the config, the app) out of the collector's sight.

    Those objects live as long as the process, yet every full collection would walk them
    again; frozen, a full collection walks only what probes allocate, so its cost no longer
    grows with the imports. Objects of later configs (reloads) stay collectable.
    """
    gc.collect()
    gc.freeze()


def _format_address(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
