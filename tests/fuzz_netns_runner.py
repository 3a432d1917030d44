"""Runs the exporter for test_fuzz.py inside a fresh network namespace with only loopback.

Started by the test as `unshare --net -- python fuzz_netns_runner.py SOCKET CONFIG` (as
root). It brings up the namespace's loopback, starts a TCP target that greets and hangs up,
and serves the exporter on the Unix socket SOCKET (a path in the file system, which the test
reaches from the host namespace). It prints one JSON line once ready (the target's port, the
namespace's interfaces and its id), then serves until its stdin closes.

Fuzzed targets must never reach past this machine, and here they cannot: the namespace has
no interface but loopback and no route, so whatever the exporter does, a packet for another
address or a DNS query goes nowhere. On top of that, a guard refuses any name but localhost
and any connection but to loopback, failing the probe with a message that starts "fuzz
test:", so that test_fuzz.py can show the guard holds without relying on it.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from sonde_exporter.exporter import Exporter
from sonde_exporter.server import create_app

GUARD = "fuzz test:"
"""How every refusal of the guard starts; the test looks for it in the probe's debug output."""


def is_local(host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return ip.is_loopback or ip.is_unspecified


class LoopbackOnlyLoop(asyncio.SelectorEventLoop):
    """An event loop that resolves no name but localhost and no address but loopback."""

    async def getaddrinfo(self, host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name != "localhost" and not is_local(name):
            raise socket.gaierror(socket.EAI_NONAME, f"{GUARD} names other than localhost")
        return await super().getaddrinfo(host, *args, **kwargs)


def guard_connect(connect: Any) -> Any:
    def guarded(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and not is_local(str(address[0])):
            raise OSError(errno.ENETUNREACH, f"{GUARD} loopback only")
        return connect(self, address)

    return guarded


def guard_sockets() -> None:
    """socket.connect and connect_ex refuse any address but loopback, in this process."""
    for name in ("connect", "connect_ex"):
        setattr(socket.socket, name, guard_connect(getattr(socket.socket, name)))


async def greet_and_hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 fuzz\r\n")
    writer.close()


async def serve(socket_path: str, config: Path) -> None:
    target = await asyncio.start_server(greet_and_hang_up, "127.0.0.1", 0)
    runner = web.AppRunner(create_app(Exporter.from_file(config)), access_log=None)
    await runner.setup()
    await web.UnixSite(runner, socket_path).start()
    ready = {
        "live_port": target.sockets[0].getsockname()[1],
        "interfaces": sorted(name for _, name in socket.if_nameindex()),
        "netns": os.readlink("/proc/self/ns/net"),
    }
    print(json.dumps(ready), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until EOF
    await runner.cleanup()
    target.close()
    await target.wait_closed()


def main() -> None:
    socket_path, config = sys.argv[1], Path(sys.argv[2])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)
    guard_sockets()
    with asyncio.Runner(loop_factory=LoopbackOnlyLoop) as runner:
        runner.run(serve(socket_path, config))


if __name__ == "__main__":
    main()
