"""Runs the exporter for test_fuzz.py inside a fresh network namespace with only loopback.

Started by the test as `unshare --net -- python fuzz_netns_runner.py SOCKET CONFIG` (as
root). It brings up the namespace's loopback, starts a TCP target that greets and hangs up,
and serves the exporter on the Unix socket SOCKET (a path in the file system, which the test
reaches from the host namespace). It prints one JSON line once ready (the target's port, the
namespace's interfaces and its id), then serves until its stdin closes.

Fuzzed targets must never reach past this machine, and here they cannot: the namespace has
no interface but loopback and no route, so whatever the exporter does, a packet for another
address or a DNS query goes nowhere. On top of that, loopback_guard refuses any name but
localhost and any address but loopback, so that test_fuzz.py can show the guard holds without
relying on it.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import loopback_guard
from aiohttp import web

from sonde_exporter.app import build_app
from sonde_exporter.exporter import Exporter


async def greet_and_hang_up(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 fuzz\r\n")
    writer.close()


async def serve(socket_path: str, config: Path) -> None:
    target = await asyncio.start_server(greet_and_hang_up, "127.0.0.1", 0)
    runner = web.AppRunner(build_app(Exporter.from_file(config)), access_log=None)
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
    loopback_guard.install()
    asyncio.run(serve(socket_path, config))


if __name__ == "__main__":
    main()
