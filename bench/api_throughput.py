"""Management API throughput: create N TCP monitors through POST /v1/tcp-monitors (C at a
time), then list them with GET /v1/tcp-monitors, against a real server process with its
SQLite file on disk.

    .venv/bin/python bench/api_throughput.py --monitors 10000 --concurrency 16

The server runs as `python -m sonde_exporter` on a free loopback port with a fresh database
in a temporary directory and `--monitors.limit` set to N. The monitors point at a closed
loopback port; `--scheduler on` lets the engine check them meanwhile (every 60 s each, so
N/60 checks a second), `off` measures the API alone. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

CONFIG = "modules:\n  tcp:\n    prober: tcp\n    timeout: 5s\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(session: aiohttp.ClientSession, base: str, key: str) -> None:
    for _ in range(300):
        try:
            async with session.get(f"{base}/v1/tcp-monitors", headers=_auth(key)) as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the server did not answer")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create_all(
    session: aiohttp.ClientSession, base: str, key: str, count: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue = iter(range(count))

    async def worker() -> None:
        for n in queue:
            body = {"name": f"m{n}", "host": "127.0.0.1", "port": 9}
            started = time.perf_counter()
            async with session.post(f"{base}/v1/tcp-monitors", json=body, headers=_auth(key)) as r:
                await r.read()
                if r.status != 201:
                    raise SystemExit(f"create {n}: {r.status} {await r.text()}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def list_all(
    session: aiohttp.ClientSession, base: str, key: str, rounds: int
) -> tuple[list[float], int, int]:
    times = []
    size = items = 0
    for _ in range(rounds):
        started = time.perf_counter()
        async with session.get(f"{base}/v1/tcp-monitors", headers=_auth(key)) as response:
            body = await response.read()
            times.append(time.perf_counter() - started)
        size = len(body)
        items = body.count(b'"id"')
    return times, size, items


async def drive(args: argparse.Namespace, base: str, key: str) -> None:
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, base, key)
        elapsed, latencies = await create_all(session, base, key, args.monitors, args.concurrency)
        list_times, size, items = await list_all(session, base, key, args.rounds)
    latencies.sort()
    print(
        "| monitors | concurrency | scheduler | create total | creates/s | create p50 | "
        f"create p99 | list (best of {args.rounds}) | list size |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.monitors} | {args.concurrency} | {args.scheduler} | {elapsed:.1f} s | "
        f"{args.monitors / elapsed:.0f} | {statistics.median(latencies) * 1000:.1f} ms | "
        f"{latencies[int(len(latencies) * 0.99) - 1] * 1000:.1f} ms | "
        f"{min(list_times) * 1000:.0f} ms ({items} items) | {size / 1e6:.1f} MB |"
    )
    print(f"\nload average after the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")


def measure(args: argparse.Namespace) -> None:
    """Start a server on a fresh database with a key, drive it, stop it."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp, "sonde.db")
        Path(tmp, "config.yml").write_text(CONFIG)
        python = [sys.executable, "-m", "sonde_exporter"]
        key = subprocess.run(
            [
                *python,
                "api-key",
                "--storage.path",
                str(db),
                "create",
                "--name",
                "bench",
                "--scope",
                "tcp-monitors:read",
                "--scope",
                "tcp-monitors:write",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        port = free_port()
        server = subprocess.Popen(
            [
                *python,
                "--config.file",
                str(Path(tmp, "config.yml")),
                "--storage.path",
                str(db),
                "--web.listen-address",
                f"127.0.0.1:{port}",
                "--monitors.limit",
                str(args.monitors),
                "--monitors.scheduler",
                args.scheduler,
                "--log.level",
                "warn",
            ],
        )
        try:
            asyncio.run(drive(args, f"http://127.0.0.1:{port}", key))
        finally:
            server.terminate()
            server.wait(30)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--monitors", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--scheduler", choices=["on", "off"], default="off")
    p.add_argument("--rounds", type=int, default=5)
    measure(p.parse_args())


if __name__ == "__main__":
    main()
