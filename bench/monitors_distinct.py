"""N *distinct* monitors at work (issue 19), in one run: a real server process on a fresh
SQLite file, N monitors created through the management API, each with its own target, all
probing real loopback listeners (bench/loopback_targets.py) every 60 s.

    .venv/bin/python bench/monitors_distinct.py --monitors 10000
    .venv/bin/python bench/monitors_distinct.py --monitors 300 --src ../main/src   # another tree

The mix, by monitor number: 80 % TCP (one in eight of them on the `tcp_tls` module, which
verifies the listener's certificate against the bench's CA for the monitor's own address:
distinct server names), 15 % ICMP (echo to the monitor's 127.x.y.z address), 5 % email.
There is no mail server in the bench: the email monitors are created disabled (loaded and
planned, never run). Every TCP monitor has its own listener on its own address and port;
one monitor in four sets its own policies.

Measured, in this order: RSS with no monitor and with N loaded; over `--window` seconds the
scheduling lag (p50, p99 of the exporter's histogram) and the exporter's CPU per check
started; a SIGHUP reload (unchanged config): its duration (signal to the "Loaded config file"
log line), /-/healthy sampled every 10 ms meanwhile (p99, max), RSS just before and 2 s
after; a restart: process start to /-/ready; then the same probes through /probe (a second
exporter without monitors, the same modules and targets at the same rate) for CPU per probe.
Prints a table and appends a JSON line to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from process_stats import cpu_seconds, free_port, lag_quantile, parse_metrics, rss_mb

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
      tls_config:
        ca_file: {ca_file}
  icmp:
    prober: icmp
    timeout: 5s
"""
"""No `email` module: email monitors get the implicit one (STARTTLS always, system CAs)."""

BENCH = Path(__file__).resolve().parent
SRC = BENCH.parent / "src"
SCOPES = ("tcp-monitors:write", "icmp-monitors:write", "email-monitors:write")
INTERVAL = 60


def address(n: int) -> str:
    """A distinct loopback address per monitor number, from 127.1.0.0 up (127.0.0.x is where
    other servers on the machine listen)."""
    n += 1 << 16
    return f"127.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def port(n: int) -> int:
    """Below the ephemeral range, so no outgoing connection of the machine holds it."""
    return 10_000 + n % 20_000


def monitor(n: int) -> tuple[str, dict[str, Any]]:
    """The kind and request body of monitor number n."""
    body: dict[str, Any] = {"name": f"m{n}", "isEnabled": True, "intervalSeconds": INTERVAL}
    if n % 4 == 3:
        body["degradedResponseTimeMs"] = 100 + n % 900
    if n % 16 == 5:
        body["maxResponseTimeMs"] = 2000 + n % 1000
    slot = n % 20
    host = address(n)
    if slot < 16:  # TCP; slots 0 and 8 on the TLS module
        return "tcp", {**body, "module": module_of(n), "host": host, "port": port(n)}
    if slot < 19:  # the module's packet count, as /probe sends
        return "icmp", {**body, "host": host}
    return "email", {
        **body,
        "isEnabled": False,  # no mail server in the bench
        "intervalSeconds": 3600,
        "timeoutMs": 30_000,
        "smtpUrl": f"smtp://{host}:{port(n)}",
        "receiveUrl": f"imap://{host}:{port(n + 1)}",
        "email": f"probe{n}@example.com",
        "username": f"probe{n}",
        "password": f"secret-{n}",
    }


def module_of(n: int) -> str:
    slot = n % 20
    if slot < 16:
        return "tcp_tls" if slot % 8 == 0 else "tcp"
    return "icmp" if slot < 19 else "email"


def probes(count: int) -> list[str]:
    """module=...&target=... of every monitor that runs: what /probe is asked for the same."""
    out = []
    for n in range(count):
        module = module_of(n)
        if module.startswith("tcp"):
            out.append(f"module={module}&target={address(n)}:{port(n)}")
        elif module == "icmp":
            out.append(f"module=icmp&target={address(n)}")
    return out


def listeners(count: int, ca_file: Path) -> dict[str, Any]:
    spec: dict[str, Any] = {"plain": [], "tls": [], "ca_file": str(ca_file)}
    for n in range(count):
        module = module_of(n)
        if module.startswith("tcp"):
            spec["tls" if module == "tcp_tls" else "plain"].append([address(n), port(n)])
    return spec


async def wait_ready(session: aiohttp.ClientSession, base: str) -> None:
    for _ in range(6000):
        try:
            async with session.get(f"{base}/-/ready") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.01)
    raise SystemExit("the server did not become ready")


async def scrape(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with session.get(f"{base}/metrics") as response:
        return parse_metrics(await response.text())


async def checks_by_status(session: aiohttp.ClientSession, base: str) -> dict[str, int]:
    """Checks since the start by status, summed over the monitors (/monitors/metrics): the
    listeners are real, so anything but "up" means a bench or exporter fault."""
    async with session.get(f"{base}/monitors/metrics") as response:
        text = await response.text()
    totals: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith("sonde_monitor_checks_total{"):
            status = line.split('status="', 1)[1].split('"', 1)[0]
            totals[status] = totals.get(status, 0) + int(float(line.rsplit(" ", 1)[1]))
    return totals


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
) -> tuple[float, list[float]]:
    """SIGHUP, then (seconds until the reload's log line, /-/healthy latencies meanwhile,
    asked every 10 ms, and for 0.5 s after)."""
    seen = reloads(log)
    latencies: list[float] = []
    started = time.perf_counter()
    server.send_signal(signal.SIGHUP)
    took = None
    while took is None or time.perf_counter() - started < took + 0.5:
        if time.perf_counter() - started > 600:
            raise SystemExit("no reload within 600 s")
        asked = time.perf_counter()
        async with session.get(f"{base}/-/healthy") as response:
            await response.read()
        latencies.append(time.perf_counter() - asked)
        if took is None and reloads(log) != seen:
            took = time.perf_counter() - started
        await asyncio.sleep(0.01)
    assert took is not None
    return took, latencies


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_probes(base: str, queries: list[str], rate: float, seconds: float) -> int:
    """/probe of `queries` in turn at `rate` per second; the number asked."""
    async with aiohttp.ClientSession() as session:

        async def one(query: str) -> None:
            async with session.get(f"{base}/probe?{query}") as response:
                assert response.status == 200, await response.text()
                await response.read()

        tasks, start, count = [], time.monotonic(), int(seconds * rate)
        for i in range(count):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(queries[i % len(queries)])))
        await asyncio.gather(*tasks)
        return count


class Servers:
    """The exporter processes of one run, on one scratch directory."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.tmp, self.args = tmp, args
        self.config = tmp / "config.yml"
        self.config.write_text(CONFIG.format(ca_file=tmp / "ca.pem"))
        self.env = {**os.environ, "PYTHONPATH": str(Path(args.src).resolve())}
        self.python = [sys.executable, "-m", "sonde_exporter"]

    def api_key(self, db: Path) -> str:
        scopes = [arg for scope in SCOPES for arg in ("--scope", scope)]
        return subprocess.run(
            [*self.python, "api-key", "--storage.path", str(db), "create", "--name", "b", *scopes],
            check=True,
            capture_output=True,
            text=True,
            env=self.env,
        ).stdout.strip()

    def start(self, storage: str, name: str) -> tuple[subprocess.Popen[bytes], str, Path]:
        port_ = free_port()
        log = self.tmp / f"{name}.log"
        command = [
            *self.python,
            f"--config.file={self.config}",
            f"--storage.path={storage}",
            f"--web.listen-address=127.0.0.1:{port_}",
            f"--monitors.limit={max(self.args.monitors, 1)}",
        ]
        with log.open("ab") as out:
            server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        return server, f"http://127.0.0.1:{port_}", log


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait(60)


async def drive(args: argparse.Namespace, servers: Servers) -> dict[str, Any]:
    db = servers.tmp / "sonde.db"
    key = servers.api_key(db)
    f: dict[str, Any] = {}
    server, base, log = servers.start(str(db), "monitors")
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, base)
            await asyncio.sleep(1)
            f["rss_empty_mb"] = rss_mb(server.pid)
            f["create_s"] = await create_all(session, base, key, args.monitors, args.concurrency)
            await asyncio.sleep(args.warmup)
            f["rss_loaded_mb"] = rss_mb(server.pid)
            before, cpu0, t0 = await scrape(session, base), cpu_seconds(server.pid), time.time()
            await asyncio.sleep(args.window)
            after, cpu1, t1 = await scrape(session, base), cpu_seconds(server.pid), time.time()
            lag = "sonde_monitor_scheduling_lag_seconds_count"
            checks = after[lag] - before[lag]
            skipped = "sonde_monitor_skipped_ticks_total"
            f["window_s"] = round(t1 - t0, 1)
            f["checks"] = int(checks)
            f["skipped_ticks"] = int(after[skipped] - before[skipped])
            f["lag_p50_ms"] = lag_quantile(before, after, 0.5) * 1000
            f["lag_p99_ms"] = lag_quantile(before, after, 0.99) * 1000
            f["cpu_per_check_us"] = (cpu1 - cpu0) / max(checks, 1) * 1e6
            f["checks_by_status"] = await checks_by_status(session, base)
            f["rss_before_reload_mb"] = rss_mb(server.pid)
            before = await scrape(session, base)
            f["reload_s"], healthy = await reload(session, base, server, log)
            after = await scrape(session, base)
            f["reload_lag_p99_ms"] = lag_quantile(before, after, 0.99) * 1000
            f["healthy_samples"] = len(healthy)
            f["healthy_p99_ms"] = quantile(healthy, 0.99) * 1000
            f["healthy_max_ms"] = max(healthy) * 1000
            await asyncio.sleep(2)
            f["rss_after_reload_mb"] = rss_mb(server.pid)
    finally:
        stop(server)
    started = time.perf_counter()
    server, base, log = servers.start(str(db), "restart")
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, base)
            f["startup_to_ready_s"] = time.perf_counter() - started
    finally:
        stop(server)
    queries = probes(args.monitors)
    server, base, log = servers.start(":memory:", "probe")
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, base)
        rate = len(queries) / INTERVAL
        await run_probes(base, queries, rate, 5)
        cpu0 = cpu_seconds(server.pid)
        asked = await run_probes(base, queries, rate, args.probe_window)
        f["probes"] = asked
        f["cpu_per_probe_us"] = (cpu_seconds(server.pid) - cpu0) / asked * 1e6
    finally:
        stop(server)
    f["cpu_ratio"] = f["cpu_per_check_us"] / f["cpu_per_probe_us"]
    return f


def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        spec = tmp / "listeners.json"
        spec.write_text(json.dumps(listeners(args.monitors, tmp / "ca.pem")))
        targets = subprocess.Popen(
            [sys.executable, str(BENCH / "loopback_targets.py"), str(spec)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert targets.stdout is not None
            if targets.stdout.readline().strip() != "ready":
                raise SystemExit("the loopback listeners did not start")
            return asyncio.run(drive(args, Servers(args, tmp)))
        finally:
            targets.terminate()
            targets.wait(30)


BOUNDS = {
    "RSS loaded - empty": ("rss_growth_mb", "MB", 100),
    "start-up to /-/ready": ("startup_to_ready_s", "s", 3),
    "reload (SIGHUP, unchanged)": ("reload_s", "s", 2),
    "RSS after reload vs before": ("rss_reload_change_pct", "%", 5),
    "/-/healthy p99 during reload": ("healthy_p99_ms", "ms", 50),
    "scheduling lag p99": ("lag_p99_ms", "ms", 50),
    "CPU per check / per /probe": ("cpu_ratio", "x", 1.2),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--monitors", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--warmup", type=float, default=15.0, help="seconds after the creates")
    p.add_argument("--window", type=float, default=60.0, help="seconds of lag and CPU")
    p.add_argument("--probe-window", type=float, default=30.0)
    p.add_argument("--label", default="")
    p.add_argument("--src", default=str(SRC), help="the sonde_exporter tree to run (PYTHONPATH)")
    args = p.parse_args()
    load = os.getloadavg()
    f = measure(args)
    f["rss_growth_mb"] = f["rss_loaded_mb"] - f["rss_empty_mb"]
    f["rss_reload_change_pct"] = (
        (f["rss_after_reload_mb"] - f["rss_before_reload_mb"]) / f["rss_before_reload_mb"] * 100
    )
    print(f"{args.monitors} distinct monitors, load average {load[0]:.2f} at the start\n")
    print("| figure | measured | bound |")
    print("|---|---|---|")
    for name, (key, unit, bound) in BOUNDS.items():
        verdict = "" if f[key] <= bound else " (over)"
        print(f"| {name} | {f[key]:.2f} {unit} | {bound} {unit}{verdict} |")
    print(
        f"\nRSS {f['rss_empty_mb']:.0f} -> {f['rss_loaded_mb']:.0f} MB; reload "
        f"{f['rss_before_reload_mb']:.0f} -> {f['rss_after_reload_mb']:.0f} MB; "
        f"{f['checks']} checks in {f['window_s']} s ({f['skipped_ticks']} ticks skipped), "
        f"lag p50 {f['lag_p50_ms']:.1f} ms; {f['cpu_per_check_us']:.0f} us per check, "
        f"{f['cpu_per_probe_us']:.0f} us per /probe; checks by status {f['checks_by_status']}; /-/healthy max {f['healthy_max_ms']:.0f} ms "
        f"of {f['healthy_samples']}; creates {f['create_s']:.1f} s"
    )
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    now = datetime.now(UTC)
    line = {
        "kind": "monitors_distinct",
        "date": now.isoformat(timespec="seconds"),
        "label": args.label,
        "host": platform.node(),
        "ncpu": os.cpu_count(),
        "loadavg_start": load,
        "loadavg_end": os.getloadavg(),
        "monitors": args.monitors,
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in f.items()},
    }
    path = results / f"{now:%Y%m%dT%H%M%SZ}-monitors-distinct.jsonl"
    with path.open("a") as out:
        out.write(json.dumps(line) + "\n")
    print(f"\nwrote {path.relative_to(BENCH.parent)}")


if __name__ == "__main__":
    main()
