"""Command line, with blackbox_exporter's flag names, and the server's life cycle."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from . import __version__
from .app import LISTENER_CONTEXT, build_app
from .collector import settle
from .config import ConfigError, describe_unsupported, load_config
from .durations import format_duration, parse_duration
from .exporter import Exporter
from .listening import ConnectionLimits, Listeners, connection_budget, raise_fd_limit
from .logs import LEVELS, configure, fields
from .monitors.discovery import external_url, listen_address
from .monitors.engine import Retention
from .monitors.options import DEFAULT_STORAGE_PATH, MonitorOptions
from .websecurity import WebConfig, load_web_config

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
        "--web.external-url",
        dest="external_url",
        metavar="URL",
        help="the URL under which the exporter is reachable, for /v1/sd's targets (default: "
        "the first listen address; on every address, this machine's hostname and that port)",
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
    _monitor_flags(p)
    _connection_flags(p)
    p.add_argument(
        "--web.status-page.public",
        dest="public_status",
        action="store_true",
        help="serve /status without credentials, in its reduced public view (see README, "
        "Status page)",
    )
    p.add_argument("--version", action="version", version=f"sonde-exporter {__version__}")
    args = p.parse_args(argv)
    if not math.isfinite(args.timeout_offset) or args.timeout_offset < 0:
        p.error("--timeout-offset must be a non-negative number of seconds")
    if args.history_limit < 0:
        p.error("--history.limit must not be negative")
    for flag, value, low in (
        ("--monitors.max-concurrency", args.max_concurrency, 1),
        ("--monitors.limit", args.monitor_limit, 0),
        ("--storage.retention.results", args.retention_results, 1),
    ):
        if value < low:
            p.error(f"{flag} must be at least {low}")
    args.listen = [_split_listen(p, a) for a in (args.listen or [DEFAULT_LISTEN])]
    args.address = listen_address(*args.listen[0])
    if args.external_url is not None:
        try:
            args.address = external_url(args.external_url)
        except ValueError as exc:
            p.error(f"--web.external-url {args.external_url!r}: {exc}")
    return args


def _monitor_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--storage.path",
        dest="storage_path",
        default=DEFAULT_STORAGE_PATH,
        metavar="FILE",
        help="SQLite file of the monitors and their results (its directory is created); "
        ":memory: keeps nothing",
    )
    p.add_argument(
        "--storage.retention",
        dest="retention",
        type=_retention,
        default="31d",
        metavar="DURATION",
        help="results older than this are deleted (such as 31d, 12h)",
    )
    p.add_argument(
        "--storage.retention.results",
        dest="retention_results",
        type=int,
        default=Retention().max_results,
        metavar="N",
        help="most results kept per monitor (the oldest go first)",
    )
    p.add_argument(
        "--monitors.scheduler",
        dest="scheduler",
        choices=["on", "off"],
        default="on",
        help="off: the exporter runs no monitor itself (Prometheus schedules them via /v1/sd)",
    )
    p.add_argument(
        "--monitors.max-concurrency",
        dest="max_concurrency",
        type=int,
        default=64,
        metavar="N",
        help="most scheduled checks running at once",
    )
    p.add_argument(
        "--monitors.limit",
        dest="monitor_limit",
        type=int,
        default=MonitorOptions.limit,
        metavar="N",
        help="most monitors of each kind the management API may create",
    )


def _connection_flags(p: argparse.ArgumentParser) -> None:
    defaults = ConnectionLimits()
    p.add_argument(
        "--web.max-connections",
        dest="max_connections",
        type=_count,
        default=defaults.max_connections,
        metavar="N",
        help="most open client connections, all listeners together; lowered to leave file "
        "descriptors for probes; 0: as many as the descriptor limit allows",
    )
    p.add_argument(
        "--web.read-header-timeout",
        dest="header_timeout",
        type=_timeout,
        default=format_duration(defaults.header_timeout),
        metavar="DURATION",
        help="a new connection that has not sent its request headers (TLS handshake included) "
        "within this is closed",
    )
    p.add_argument(
        "--web.idle-timeout",
        dest="idle_timeout",
        type=_timeout,
        default=format_duration(defaults.idle_timeout),
        metavar="DURATION",
        help="a keep-alive connection without a new request for this long is closed",
    )


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number, 0 or more")
    return int(text)


def _timeout(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive duration")
    return seconds


def _retention(text: str) -> float:
    """A retention: days (31d) and weeks (2w) as in Prometheus, or a Go duration (12h)."""
    unit = {"d": 86400.0, "w": 7 * 86400.0}.get(text[-1:])
    try:
        seconds = float(text[:-1]) * unit if unit is not None else parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a duration such as 31d or 12h"
        ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a positive duration")
    return seconds


def _split_listen(p: argparse.ArgumentParser, address: str) -> tuple[str | None, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        p.error(f"--web.listen-address {address!r}: expected host:port or :port")
    return (host.strip("[]") or None), int(port)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["api-key"]:
        from .api_keys_cli import main as api_key_main  # the server's imports are not needed

        return api_key_main(argv[1:])
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
    monitors = MonitorOptions(
        storage_path=args.storage_path,
        scheduler=args.scheduler == "on",
        max_concurrency=args.max_concurrency,
        limit=args.monitor_limit,
        retention=Retention(max_age=args.retention, max_results=args.retention_results),
        address=args.address,
    )
    exporter = Exporter(config_file, config, args.timeout_offset, args.history_limit, monitors)
    exporter.enable_debug = args.enable_debug
    try:
        limits = ConnectionLimits(args.max_connections, args.header_timeout, args.idle_timeout)
        asyncio.run(
            serve(
                exporter, args.listen, web_config, public_status=args.public_status, limits=limits
            )
        )
    except OSError as exc:
        logger.error("Cannot listen", extra=fields(err=str(exc)))
        return 1
    return 0


async def serve(
    exporter: Exporter,
    listen: list[tuple[str | None, int]],
    web_config: WebConfig | None = None,
    *,
    public_status: bool = False,
    limits: ConnectionLimits | None = None,
) -> None:
    limits = limits or ConnectionLimits()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # Before listening: a SIGHUP sent once the port answers must reload, not kill.
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, exporter.reload_soon)
    app = build_app(exporter, public_status=public_status, web_config=web_config)
    ssl_context = app.get(LISTENER_CONTEXT)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    listeners = Listeners(runner, _connection_limit(limits), limits, ssl_context)
    try:
        for host, port in listen:
            listeners.listen(host, port)
        for sock in listeners.sockets:  # the real ports, also when asked for port 0
            address = sock.getsockname()
            logger.info("Listening on address", extra=fields(address=_format_address(address)))
        logger.info(
            "Started sonde-exporter",
            extra=fields(version=__version__, modules=len(exporter.config.modules)),
        )
        settle()  # what start-up built lives as long as the process (collector.py)
        await stop.wait()
        logger.info("Shutting down")
    finally:
        await listeners.close()
        await runner.cleanup()


def _connection_limit(limits: ConnectionLimits) -> int:
    """Raise the descriptor limit as Go does, and cap the connections to leave probes theirs."""
    fd_limit = raise_fd_limit()
    budget = connection_budget(limits.max_connections, fd_limit)
    logger.info(
        "File descriptor limit", extra=fields(fd_limit=fd_limit, max_connections=budget.limit)
    )
    if budget.lowered:
        logger.warning(
            "Lowered --web.max-connections to leave file descriptors for probes",
            extra=fields(requested=limits.max_connections, max_connections=budget.limit),
        )
    return budget.limit


def _format_address(address: tuple[str, int] | tuple[str, int, int, int]) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
