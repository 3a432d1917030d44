"""The listening sockets and their accept loops, which admit connections within the bound.

asyncio's own server (behind aiohttp's TCPSite) accepts whatever arrives and, out of
descriptors, logs a traceback per attempt in a tight loop; it has no way to stop accepting
for a while. Here each listener runs an accept loop that first reserves a slot
(connections.Connections), backs off after an accept error as Go's http.Server does (5 ms,
doubling up to 1 s) and logs those errors rate-limited (accepterrors).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from .accepterrors import AcceptErrorLog
from .connections import Connections

FIRST_BACKOFF, LAST_BACKOFF = 0.005, 1.0
YIELD_EVERY = 16  # as asyncio's own accept, which takes up to a backlog's worth at a time
# The client gave up before the accept: nothing to wait for or log (Go retries these too).
_CLIENT_GONE = frozenset((errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR))


def backlog() -> int:
    """As Go: the kernel's most (net.core.somaxconn), so that a burst of new connections
    waits in the queue rather than having its SYNs dropped (a client retries one after 1 s)."""
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return socket.SOMAXCONN


def bind(host: str | None, port: int) -> list[socket.socket]:
    """Listening sockets for `host` (None: every address, IPv4 and IPv6), as asyncio's
    create_server makes them: SO_REUSEADDR, and IPv6 sockets for IPv6 only."""
    sockets: list[socket.socket] = []
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog())
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


@dataclass(frozen=True)
class ConnectionLimits:
    """--web.max-connections (before the descriptor cap), --web.read-header-timeout and
    --web.idle-timeout; the defaults are argued in the README, Security."""

    max_connections: int = 512
    header_timeout: float = 10.0
    idle_timeout: float = 75.0


class Listeners:
    """Every --web.listen-address of one runner, sharing one bound on connections."""

    def __init__(
        self,
        runner: web.AppRunner,
        limit: int,
        timeouts: ConnectionLimits,
        tls: ssl.SSLContext | None,
    ) -> None:
        assert runner.server is not None, "runner.setup() first"
        self.connections = Connections(
            runner.server, limit, timeouts.header_timeout, timeouts.idle_timeout, tls
        )
        self.sockets: list[socket.socket] = []
        self._errors = AcceptErrorLog()
        self._tasks: list[asyncio.Task[None]] = []

    def listen(self, host: str | None, port: int) -> None:
        for sock in bind(host, port):
            self.sockets.append(sock)
            self._tasks.append(asyncio.create_task(self._accept(sock)))

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        backoff, accepted = FIRST_BACKOFF, 0
        while True:
            await self.connections.reserve()
            try:
                sock, _ = await loop.sock_accept(listener)
            except OSError as exc:
                self.connections.cancel_reservation()
                if exc.errno in _CLIENT_GONE:
                    continue
                self._errors.record(exc, loop.time())
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, LAST_BACKOFF)
                continue
            except BaseException:
                self.connections.cancel_reservation()
                raise
            backoff = FIRST_BACKOFF
            self.connections.open(sock)
            accepted += 1
            if accepted % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # accepts that never wait (a flood) must not hold the loop

    async def close(self) -> None:
        """Stop accepting; the runner's cleanup then closes the connections."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sock in self.sockets:
            sock.close()
        self.connections.close_all()
