"""/status and /status/{id} with 1,000 monitors and 1,000,000 results (issue 14).

Seeds a database directly with SQL (schema from the exporter's own migrations, roll-ups
computed from the results the way the writer keeps them), starts the exporter on it with the
scheduler off, and times GET /status and GET /status/{id} from a client on loopback
(aiohttp, which asks for gzip as browsers do). By default the results span 30 days, so every
monitor has 720 hourly roll-up rows: the most the uptime columns ever read.

    .venv/bin/python bench/status_page.py                  # seed once into /tmp, then time
    .venv/bin/python bench/status_page.py --monitors 1000 --results 1000 --runs 30

This is a benchmark, not a test: nothing here runs in `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from sonde_exporter.storage.schema import migrate  # noqa: E402

CONFIG = """\
modules:
  tcp:
    prober: tcp
    timeout: 5s
    degraded_response_time: 150ms
    max_response_time: 1s
"""
TAGS = [f"team-{i}" for i in range(10)]


def seed(path: Path, monitors: int, per_monitor: int, span: float, now: float) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    migrate(conn)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO monitors (key, id, kind, source, name, module, target, interval, status, "
        "labels, spec, created_at, updated_at) VALUES (?, ?, 'tcp', 'api', ?, 'tcp', ?, ?, ?, "
        "'{}', ?, ?, ?)",
        [
            (
                k,
                f"tcpm_{k:016x}",
                f"service-{k:04d}",
                f"127.0.0.1:{10000 + k}",
                span / per_monitor,
                "maintenance" if k % 97 == 0 else "disabled" if k % 89 == 0 else "active",
                f'{{"tags": ["{TAGS[k % len(TAGS)]}"]}}',
                now - span,
                now - span,
            )
            for k in range(1, monitors + 1)
        ],
    )
    step = span / per_monitor
    # Results interleaved in time across monitors, as the scheduler writes them.
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO results (monitor_key, checked_at, status, response_time, reason, error, "
        "attempts, degraded, details) "
        "SELECT m.key, ? - (? - n.i) * ? + m.key * 0.001, "
        "CASE WHEN (n.i * 7 + m.key) % 53 = 0 THEN 'down' ELSE 'up' END, "
        "CASE WHEN (n.i * 7 + m.key) % 53 = 0 THEN NULL ELSE 0.01 + ((n.i + m.key) % 20) * 0.01 END, "
        "CASE WHEN (n.i * 7 + m.key) % 53 = 0 THEN 'connect_refused' END, "
        "CASE WHEN (n.i * 7 + m.key) % 53 = 0 THEN 'connection refused' END, "
        "1, ((n.i + m.key) % 20) >= 15, NULL FROM n, monitors m ORDER BY n.i, m.key",
        (per_monitor - 1, now - 30, per_monitor - 1, step),
    )
    conn.execute(
        "INSERT INTO rollups (monitor_key, hour, checks, up, response_time_sum) "
        "SELECT monitor_key, CAST(checked_at / 3600 AS INTEGER), count(*), sum(status = 'up'), "
        "total(CASE WHEN status = 'up' THEN response_time END) FROM results GROUP BY 1, 2"
    )
    conn.execute("COMMIT")
    conn.close()


async def worst_case(db: Path, runs: int) -> str:
    """In process, no HTTP: /status's work when every monitor has a new check since the last
    request (1,000 new rows read, every sparkline drawn again)."""
    from sonde_exporter.statuspage import svg
    from sonde_exporter.statuspage.overview import SPARK_POINTS, load_rows, parse_filter
    from sonde_exporter.statuspage.overview_view import render_overview
    from sonde_exporter.statuspage.recent import RecentChecks
    from sonde_exporter.statuspage.uptime import Settled
    from sonde_exporter.storage import SqliteStore

    store = SqliteStore(str(db))
    await store.start()
    records, latest = await store.load()
    expected = {r.monitor_id: r.checked_at for r in latest.values()}
    now = time.time()
    hour = int(now // 3600)
    settled = Settled(hour, await store.uptime_sums(hour, before=hour - 1))
    recent = RecentChecks(SPARK_POINTS)
    await load_rows(store, records, settled, recent, expected)
    samples, cpu = [], []
    for _ in range(runs):
        # The seeded results interleave the monitors, so the newest 1,000 rows hold one check
        # of each: moving the read mark back by that much is "every monitor checked once since
        # the last request" (each is appended again; reading and drawing cost the same).
        recent._seq = (recent._seq or 0) - len(records)
        started, started_cpu = time.perf_counter(), time.process_time()
        rows = await load_rows(store, records, settled, recent, expected)
        render_overview(rows, parse_filter({}, []), svg.Sparklines(), public=False, now=now)
        samples.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    hourly = time.perf_counter()
    await store.uptime_sums(hour, before=hour - 1)
    hourly = time.perf_counter() - hourly
    await store.close()
    return (
        f"every monitor checked since the last request, in process (no HTTP, no gzip): "
        f"median {statistics.median(samples) * 1000:.0f} ms "
        f"({statistics.median(cpu) * 1000:.0f} ms CPU) over {runs}; "
        f"the hourly uptime pass (background): {hourly * 1000:.0f} ms"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def timed(session: aiohttp.ClientSession, url: str) -> tuple[float, int]:
    started = time.perf_counter()
    async with session.get(url) as response:
        body = await response.read()
        assert response.status == 200, (url, response.status, body[:200])
    return time.perf_counter() - started, len(body)


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time: what a request costs the exporter, whatever
    else the machine is doing."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(name: str, samples: list[tuple[float, int]], cpu: float) -> str:
    ms = sorted(t * 1000 for t, _ in samples)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (
        f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {p95:.1f} | {ms[-1]:.1f} "
        f"| {cpu * 1000 / len(ms):.1f} | {samples[0][1] / 1000:.0f} kB |"
    )


async def measure(base: str, pid: int, monitors: int, runs: int, detail_runs: int) -> list[str]:
    rng = random.Random(14)
    ids = [f"tcpm_{rng.randint(1, monitors):016x}" for _ in range(detail_runs)]
    pages = [
        ("/status", [f"{base}/status"] * runs),
        ("/status?state=down", [f"{base}/status?state=down"] * runs),
        ("/status/{id}", [f"{base}/status/{i}" for i in ids]),
        ("/status/{id}?offset=900", [f"{base}/status/{i}?limit=50&offset=900" for i in ids]),
    ]
    lines = [
        "| page | requests | median ms | p95 ms | max ms | exporter CPU ms/request | body |",
        "|---|---|---|---|---|---|---|",
    ]
    async with aiohttp.ClientSession() as session:
        first = await timed(session, f"{base}/status")
        lines.insert(0, f"first /status after start: {first[0] * 1000:.0f} ms")
        for _ in range(3):  # warm the page cache and the exporter's imports
            await timed(session, f"{base}/status")
        for name, urls in pages:
            before = cpu_seconds(pid)
            samples = [await timed(session, url) for url in urls]
            lines.append(summary(name, samples, cpu_seconds(pid) - before))
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--monitors", type=int, default=1000)
    p.add_argument("--results", type=int, default=1000, help="results per monitor")
    p.add_argument("--span-days", type=float, default=30.0)
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--detail-runs", type=int, default=200)
    p.add_argument("--db", type=Path, help="reuse (or create) this database file")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sonde-status-bench-"))
    db = args.db or work / "sonde.db"
    if not db.exists():
        started = time.perf_counter()
        seed(db, args.monitors, args.results, args.span_days * 86400, time.time())
        print(f"seeded {db} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    with sqlite3.connect(db) as conn:
        counts = [
            conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("monitors", "results", "rollups")
        ]
    config = work / "config.yml"
    config.write_text(CONFIG)
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "sonde_exporter",
        "--config.file",
        str(config),
        "--web.listen-address",
        f"127.0.0.1:{port}",
        "--storage.path",
        str(db),
        "--monitors.scheduler",
        "off",
        "--log.level",
        "warn",
    ]
    proc = subprocess.Popen(argv, cwd=REPO, env={"PYTHONPATH": str(REPO / "src")})
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the exporter did not start") from None
                time.sleep(0.1)
        lines = asyncio.run(measure(base, proc.pid, args.monitors, args.runs, args.detail_runs))
    finally:
        proc.terminate()
        proc.wait(30)
    print(
        f"{counts[0]} monitors, {counts[1]} results, {counts[2]} roll-up rows; "
        f"load average {Path('/proc/loadavg').read_text().split()[0]}"
    )
    print("\n".join(lines))
    print(asyncio.run(worst_case(db, args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
