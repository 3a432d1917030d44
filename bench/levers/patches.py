"""Lever experiments for bench/compare.py --variant: patches applied to sonde-exporter at start.

Each launcher script in this folder applies some of these and runs sonde's CLI. They live in
bench/ only; src/ is untouched. Some are not shippable as they stand (they drop features);
they measure what a feature costs on the hot path, to judge a cheaper way to keep it.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import sys
from collections.abc import Callable


def use_uvloop() -> None:
    """uvloop's event loop instead of asyncio's (needs `pip install uvloop`)."""
    import uvloop

    uvloop.install()


def drop_probe_log() -> None:
    """No per-probe debug log lines (they feed ?debug=true and /logs): their cost bound."""
    from sonde_exporter import probe

    def drop(self: object, message: str, **fields: object) -> None:
        return None

    for level in ("debug", "info", "warn", "error"):
        setattr(probe.ProbeLog, level, drop)


class _Null:
    def labels(self, *values: str) -> _Null:
        return self

    def inc(self, amount: float = 1) -> None:
        return None

    def dec(self, amount: float = 1) -> None:
        return None

    def observe(self, value: float) -> None:
        return None


def null_self_metrics() -> None:
    """Skip the prometheus_client updates made for every probe: their cost bound."""
    from sonde_exporter import selfmetrics

    init = selfmetrics.SelfMetrics.__init__

    def init_null(self: selfmetrics.SelfMetrics) -> None:
        init(self)
        self.probes = self.probe_duration = self.in_flight = _Null()  # type: ignore[assignment]

    selfmetrics.SelfMetrics.__init__ = init_null  # type: ignore[method-assign]


def no_history() -> None:
    """--history.limit 0: no ProbeResult kept per probe."""
    sys.argv += ["--history.limit", "0"]


def run(*patches: Callable[[], None]) -> None:
    for patch in patches:
        patch()
    from sonde_exporter.cli import main

    sys.exit(main(sys.argv[1:]))


def reuse_port_workers(workers: int) -> Callable[[], None]:
    """N worker processes sharing the listen port through SO_REUSEPORT.

    Each worker has its own history and self-metrics, which is what a real version must solve;
    this only measures what the extra process buys in throughput and costs in CPU and memory.
    """

    def patch() -> None:
        from aiohttp import web

        init = web.TCPSite.__init__

        def init_reuse_port(self: web.TCPSite, *args: object, **kwargs: object) -> None:
            kwargs["reuse_port"] = True
            init(self, *args, **kwargs)  # type: ignore[arg-type]

        web.TCPSite.__init__ = init_reuse_port  # type: ignore[method-assign]
        for _ in range(workers - 1):
            if os.fork() == 0:
                break

    return patch


async def connect_without_sock_connect(sock: socket.socket, address: tuple[str, int]) -> None:
    """Connect a non-blocking socket with fewer event-loop round trips than loop.sock_connect.

    When the handshake finishes inside connect() (loopback, often a LAN), the socket is
    already connected on return and no writer is registered at all; otherwise one plain
    add_writer future waits for it. A prototype for the TCP prober's _connect.
    """
    err = sock.connect_ex(address)
    if err in (errno.EINPROGRESS, errno.EAGAIN):
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err == 0:
            try:
                sock.getpeername()
                return
            except OSError:
                pass  # still in progress: wait until writable
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            fd = sock.fileno()
            loop.add_writer(fd, _set_done, fut)
            try:
                await fut
            finally:
                loop.remove_writer(fd)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def fast_connect() -> None:
    """The TCP prober connects through connect_without_sock_connect instead of sock_connect."""
    from sonde_exporter.probers import tcp

    class _Loop:
        """Stands in for the loop argument of tcp._connect; only sock_connect is used."""

        @staticmethod
        async def sock_connect(sock: socket.socket, address: tuple[str, int]) -> None:
            await connect_without_sock_connect(sock, address)

    original = tcp._connect

    async def _connect(loop: object, sock: socket.socket, ip: str, port: int) -> None:
        await original(_Loop(), sock, ip, port)  # type: ignore[arg-type]

    tcp._connect = _connect  # type: ignore[assignment]
