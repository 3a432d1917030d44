"""What the IP filter's tests against real sockets share: listeners that count the connections
they accept, one port on 127.0.0.1 and ::1 at once (where 0.0.0.0 and :: connect), the
spellings of the unspecified address, and a resolver that reads numeric host names only."""

from __future__ import annotations

import _socket
import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from tcpservers import loopback_v6_available

UNSPECIFIED_V4 = ["0.0.0.0", "0x0", "0.0.0.0x0", "[::ffff:0:0]", "[::ffff:0.0.0.0]"]
"""0.0.0.0 as targets spell it (0x0 is a host name that resolves to it: numeric_resolver)."""
UNSPECIFIED_V6 = ["[::]", "[0::]", "[0:0:0:0:0:0:0:0]", "[::0]"]
UNSPECIFIED = UNSPECIFIED_V4 + UNSPECIFIED_V6
NEEDS_RESOLVER = ("0x0", "0.0.0.0x0")


class Listener:
    """Counts the connections it accepts, then hangs up."""

    def __init__(self) -> None:
        self.connections = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


async def accepted(listener: Listener, expected: int) -> int:
    """The listener's count once its handler ran for `expected` connections (or after 2s):
    the probe may answer before the server's handler task gets its turn."""
    for _ in range(200):
        if listener.connections >= expected:
            break
        await asyncio.sleep(0.01)
    return listener.connections


StartServer = Callable[..., Awaitable[int]]


async def start(tcp_server: StartServer, host: str) -> tuple[Listener, int]:
    listener = Listener()
    return listener, await tcp_server(listener, host)


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def loopback_pair(v4: Handler, v6: Handler) -> AsyncIterator[int]:
    """`v4` on 127.0.0.1 and `v6` on ::1, one port: where 0.0.0.0:port and [::]:port connect."""
    loopback_v6_available()
    for _ in range(20):  # the port free on 127.0.0.1 may be taken on ::1: try another
        first = await asyncio.start_server(v4, "127.0.0.1", 0)
        port = int(first.sockets[0].getsockname()[1])
        try:
            second = await asyncio.start_server(v6, "::1", port)
        except OSError:
            first.close()
            await first.wait_closed()
            continue
        break
    else:
        pytest.fail("found no port free on both 127.0.0.1 and ::1")
    try:
        yield port
    finally:
        for server in (first, second):
            server.close()
            await server.wait_closed()


def numeric_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    """getaddrinfo as the exporter calls it, but numeric hosts only (AI_NUMERICHOST), so no name
    can reach a DNS server. It calls the C function: the loopback guard refuses 0x7f000002 as
    a name before glibc could read it (inet_aton) as 127.0.0.2; connections stay guarded."""

    def numeric_only(host: Any, port: Any, family: int = 0, type: int = 0, *rest: int) -> Any:
        proto, flags = (*rest, 0, 0)[:2]
        return [
            (socket.AddressFamily(f), socket.SocketKind(t), p, name, address)
            for f, t, p, name, address in _socket.getaddrinfo(
                host, port, family, type, proto, flags | socket.AI_NUMERICHOST
            )
        ]

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
