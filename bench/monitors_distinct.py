"""Memory and reload cost of N *distinct* monitors (issue 19): a real server process on a
fresh SQLite file, N monitors created through the management API, each with its own target.

    .venv/bin/python bench/monitors_distinct.py --monitors 10000
    .venv/bin/python bench/monitors_distinct.py --monitors 300 --src ../main/src   # another tree

The mix, by monitor number: 80 % TCP (one in eight of them on a `tls: true` module, so each
TLS monitor has its own server name: its address), 15 % ICMP, 5 % email (SMTP with STARTTLS,
IMAP). Targets are distinct loopback addresses 127.x.y.z and ports; one monitor in four sets
its own policies. The monitors are created disabled: nothing is probed, which isolates what
a loaded monitor costs. Measured: RSS of the server with none, after the creates, and after
a SIGHUP reload (unchanged config), the reload's duration (signal to the "Loaded config
file" log line) and the slowest `/-/healthy` answer meanwhile. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

CONFIG = """\
modules:
  tcp:
    prober: tcp
    timeout: 5s
  tcp_tls:
    prober: tcp
    timeout: 5s
    tcp:
      tls: true
  icmp:
    prober: icmp
    timeout: 5s
"""
"""No `email` module: email monitors get the implicit one (STARTTLS always, system CAs)."""

SRC = Path(__file__).resolve().parent.parent / "src"
SCOPES = ("tcp-monitors:write", "icmp-monitors:write", "email-monitors:write")


def address(n: int) -> str:
    """A distinct loopback address per monitor number (127.0.0.1 upwards)."""
    n += 1
    return f"127.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def monitor(n: int) -> tuple[str, dict[str, Any]]:
    """The kind and request body of monitor number n."""
    body: dict[str, Any] = {"name": f"m{n}", "isEnabled": False, "intervalSeconds": 60 + n % 240}
    if n % 4 == 3:
        body["degradedResponseTimeMs"] = 100 + n % 900
    slot = n % 20
    host = address(n)
    if slot < 16:  # TCP; slots 0 and 8 on the TLS module
        module = "tcp_tls" if slot % 8 == 0 else "tcp"
        return "tcp", {**body, "module": module, "host": host, "port": 1024 + n % 60000}
    if slot < 19:
        return "icmp", {**body, "host": host, "count": 1 + n % 3}
    return "email", {
        **body,
        "intervalSeconds": 3600,
        "timeoutMs": 30_000,
        "smtpUrl": f"smtp://{host}:{1024 + n % 60000}",
        "receiveUrl": f"imap://{host}:{1024 + (n + 1) % 60000}",
        "email": f"probe{n}@example.com",
        "username": f"probe{n}",
        "password": f"secret-{n}",
    }


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    for _ in range(600):
        try:
            async with session.get(f"{base}/-/ready") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the server did not become ready")


async def create_all(
    session: aiohttp.ClientSession, base: str, key: str, count: int, concurrency: int
) -> float:
    numbers = iter(range(count))
    headers = {"Authorization": f"Bearer {key}"}

    async def worker() -> None:
        for n in numbers:
            kind, body = monitor(n)
            async with session.post(f"{base}/v1/{kind}-monitors", json=body, headers=headers) as r:
                if r.status != 201:
                    raise SystemExit(f"create {n}: {r.status} {await r.text()}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def reloads(log: Path) -> int:
    """How many times the server logged a config load (read between requests: the bench
    measures the server, not itself)."""
    return log.read_text(errors="replace").count("Loaded config file")


async def reload(
    session: aiohttp.ClientSession, base: str, server: subprocess.Popen[bytes], log: Path
) -> tuple[float, float]:
    """SIGHUP, then (seconds until the reload's log line, slowest /-/healthy meanwhile)."""
    seen = reloads(log)
    slowest = 0.0
    started = time.perf_counter()
    server.send_signal(signal.SIGHUP)
    while reloads(log) == seen:
        if time.perf_counter() - started > 600:
            raise SystemExit("no reload within 600 s")
        asked = time.perf_counter()
        async with session.get(f"{base}/-/healthy") as response:
            await response.read()
        slowest = max(slowest, time.perf_counter() - asked)
        await asyncio.sleep(0.01)
    return time.perf_counter() - started, slowest


async def drive(
    args: argparse.Namespace, base: str, key: str, server: subprocess.Popen[bytes], log: Path
) -> dict[str, float]:
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, base)
        await asyncio.sleep(1)
        figures = {"empty": rss_mb(server.pid)}
        figures["create_s"] = await create_all(session, base, key, args.monitors, args.concurrency)
        await asyncio.sleep(2)  # let the engine finish re-planning
        figures["loaded"] = rss_mb(server.pid)
        figures["reload_s"], figures["healthy_max_s"] = await reload(session, base, server, log)
        await asyncio.sleep(2)
        figures["reloaded"] = rss_mb(server.pid)
    return figures


def measure(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db, config, log = Path(tmp, "sonde.db"), Path(tmp, "config.yml"), Path(tmp, "server.log")
        config.write_text(CONFIG)
        env = {**os.environ, "PYTHONPATH": str(Path(args.src).resolve())}
        python = [sys.executable, "-m", "sonde_exporter"]
        scopes = [arg for scope in SCOPES for arg in ("--scope", scope)]
        key = subprocess.run(
            [*python, "api-key", "--storage.path", str(db), "create", "--name", "b", *scopes],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        ).stdout.strip()
        port = free_port()
        command = [
            *python,
            f"--config.file={config}",
            f"--storage.path={db}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--monitors.limit={max(args.monitors, 1)}",
        ]
        with log.open("wb") as out:
            server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
            try:
                return asyncio.run(drive(args, f"http://127.0.0.1:{port}", key, server, log))
            finally:
                server.terminate()
                server.wait(60)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--monitors", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--src", default=str(SRC), help="the sonde_exporter tree to run (PYTHONPATH)")
    args = p.parse_args()
    f = measure(args)
    print(
        "| monitors | RSS empty | RSS loaded | per monitor | create | reload | "
        "slowest /-/healthy in reload | RSS after reload |"
    )
    print("|---|---|---|---|---|---|---|---|")
    per = (f["loaded"] - f["empty"]) * 1024 / max(args.monitors, 1)
    print(
        f"| {args.monitors} | {f['empty']:.0f} MB | {f['loaded']:.0f} MB | {per:.1f} KB | "
        f"{f['create_s']:.1f} s | {f['reload_s']:.2f} s | {f['healthy_max_s'] * 1000:.0f} ms | "
        f"{f['reloaded']:.0f} MB |"
    )


if __name__ == "__main__":
    main()
