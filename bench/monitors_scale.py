"""Scheduled monitors at scale (issue 11): CPU per check, scheduling lag, start-up, history.

    .venv/bin/python bench/monitors_scale.py schedule [--monitors 10000 --interval 60 --window 150]
    .venv/bin/python bench/monitors_scale.py startup [--monitors 10000]
    .venv/bin/python bench/monitors_scale.py history [--results 1000000]

schedule: an exporter process with N TCP monitors (stored as API monitors) against a loopback
accept-and-close listener in its own process (bench/tcp_target.py). After a warm-up, over
`--window` seconds: the exporter's CPU (utime + stime of the whole process, all threads, so
the SQLite writer is charged) per check started; the scheduling lag histogram of /metrics
(p50, p99, interpolated in its buckets); and every tick accounted for: ticks due in the
window, computed from each monitor's phase, against checks started plus ticks skipped. Then
the same probe through /probe: a second exporter without monitors, the same target, requests
at the same rate (N / interval per second) from this process, the exporter's CPU per probe.

startup: a database of N monitors with 10 results each; the time from starting the exporter
process to its monitors loaded and scheduled (the log's "Loaded the monitors": the engine is
ready and the server listens next), the engine's own part (from "Opened the database"), and
the first answer of /monitors/metrics.

history: a database of `--results` results over monitors holding 50,000 each (the default
--storage.retention.results); a page of 50 results of one monitor through the engine's query
path (Database.query + results_page), newest page and a deep one; the file size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from process_stats import cpu_seconds, free_port, lag_quantile, parse_metrics
from revisions import ROOT, tcp_target

sys.path.insert(0, str(ROOT / "src"))

from sonde_exporter.monitors.identity import new_monitor_id, phase
from sonde_exporter.storage import (
    Database,
    MonitorRecord,
    monitor_rows,
    result_rows,
)

CONFIG = "modules:\n  tcp:\n    prober: tcp\n    timeout: 5s\n"
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


def scrape(address: str) -> dict[str, float]:
    status, text = get(f"http://{address}/metrics")
    assert status == 200
    return parse_metrics(text)


def start_exporter(
    tmp: Path, db: str, name: str, *extra: str
) -> tuple[subprocess.Popen[bytes], str]:
    config = tmp / "config.yml"
    config.write_text(CONFIG)
    address = f"127.0.0.1:{free_port()}"
    log = (tmp / f"{name}.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "sonde_exporter", "--config.file", str(config),
            "--web.listen-address", address, "--storage.path", db, *extra,
        ],
        stdout=log, stderr=subprocess.STDOUT, env=ENV,
    )  # fmt: skip
    return proc, address


def wait_ready(address: str, timeout: float = 60) -> float:
    """Seconds until /monitors/metrics answers 200."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if get(f"http://{address}/monitors/metrics")[0] == 200:
            return time.monotonic() - start
        time.sleep(0.01)
    raise SystemExit(f"{address} not ready after {timeout}s")


def monitor(index: int, target: str, interval: float) -> MonitorRecord:
    now = time.time()
    return MonitorRecord(
        id=new_monitor_id("tcp"), kind="tcp", source="api", name=f"m{index}", module="tcp",
        target=target, interval=interval, timeout=None, status="active",
        created_at=now, updated_at=now,
    )  # fmt: skip


async def create_monitors(path: str, records: list[MonitorRecord], results: int = 0) -> None:
    db = Database(path)
    await db.start()

    def insert(conn) -> None:  # type: ignore[no-untyped-def]
        for record in records:
            monitor_rows.insert_monitor(conn, record)
        rows = conn.execute("SELECT key FROM monitors").fetchall()
        now = time.time()
        conn.executemany(
            "INSERT INTO results (monitor_key, checked_at, status, response_time, attempts, "
            "degraded) VALUES (?, ?, 'up', 0.0002, 1, 0)",
            [(key, now - i * 60) for (key,) in rows for i in range(results)],
        )

    await db.change(insert)
    await db.close()


def due_ticks(ids: list[str], interval: float, start: float, end: float) -> int:
    total = 0
    for monitor_id in ids:
        offset = phase(monitor_id, interval)
        total += math.floor((end - offset) / interval) - math.floor((start - offset) / interval)
    return total


def schedule(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as scratch, tcp_target() as port:
        tmp = Path(scratch)
        target = f"127.0.0.1:{port}"
        db = str(tmp / "sonde.db")
        records = [monitor(i, target, args.interval) for i in range(args.monitors)]
        asyncio.run(create_monitors(db, records))
        proc, address = start_exporter(tmp, db, "monitors")
        try:
            wait_ready(address)
            time.sleep(args.warmup)
            before, cpu0, t0 = scrape(address), cpu_seconds(proc.pid), time.time()
            time.sleep(args.window)
            after, cpu1, t1 = scrape(address), cpu_seconds(proc.pid), time.time()
            # What one scrape of every monitor's last result costs the exporter.
            cpu2 = cpu_seconds(proc.pid)
            status, text = get(f"http://{address}/monitors/metrics")
            assert status == 200
            exposition = {"cpu_s": round(cpu_seconds(proc.pid) - cpu2, 3), "bytes": len(text)}
        finally:
            proc.terminate()
            proc.wait(30)
        started = (
            after["sonde_monitor_scheduling_lag_seconds_count"]
            - before["sonde_monitor_scheduling_lag_seconds_count"]
        )
        skipped = (
            after["sonde_monitor_skipped_ticks_total"] - before["sonde_monitor_skipped_ticks_total"]
        )
        due = due_ticks([r.id for r in records], args.interval, t0, t1)
        monitor_cpu = (cpu1 - cpu0) / started
        probe_cpu, probes = probe_baseline(tmp, target, args.monitors / args.interval, args)
        return {
            "monitors": args.monitors,
            "interval_s": args.interval,
            "window_s": round(t1 - t0, 1),
            "checks_started": int(started),
            "ticks_skipped": int(skipped),
            "ticks_due": due,
            "unaccounted": due - int(started + skipped),
            "lag_p50_ms": round(lag_quantile(before, after, 0.5) * 1000, 2),
            "lag_p99_ms": round(lag_quantile(before, after, 0.99) * 1000, 2),
            "cpu_per_check_us": round(monitor_cpu * 1e6, 1),
            "probe_requests": probes,
            "cpu_per_probe_us": round(probe_cpu * 1e6, 1),
            "ratio": round(monitor_cpu / probe_cpu, 3),
            "monitors_metrics_scrape": exposition,
            "storage_writes": int(
                after["sonde_storage_writes_total"] - before["sonde_storage_writes_total"]
            ),
        }


def probe_baseline(
    tmp: Path, target: str, rate: float, args: argparse.Namespace
) -> tuple[float, int]:
    """CPU per /probe of the same target at the same rate, in an exporter without monitors."""
    proc, address = start_exporter(tmp, ":memory:", "probe")
    try:
        wait_ready(address)
        url = f"http://{address}/probe?module=tcp&target={target}"

        async def load(seconds: float) -> int:
            import aiohttp

            async with aiohttp.ClientSession() as session:

                async def one() -> None:
                    async with session.get(url) as response:
                        assert response.status == 200
                        await response.read()

                tasks, start, count = [], time.monotonic(), int(seconds * rate)
                for i in range(count):
                    delay = start + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    tasks.append(asyncio.create_task(one()))
                await asyncio.gather(*tasks)
                return count

        asyncio.run(load(min(args.warmup, 10)))
        cpu0 = cpu_seconds(proc.pid)
        count = asyncio.run(load(args.probe_window))
        return (cpu_seconds(proc.pid) - cpu0) / count, count
    finally:
        proc.terminate()
        proc.wait(30)


def startup(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        db = str(tmp / "sonde.db")
        records = [monitor(i, "127.0.0.1:9", 60.0) for i in range(args.monitors)]
        asyncio.run(create_monitors(db, records, results=10))
        runs = []
        for _ in range(args.rounds):
            started = time.time()
            proc, address = start_exporter(tmp, db, "startup")
            try:
                answered = wait_ready(address)
            finally:
                proc.terminate()
                proc.wait(30)
            log = (tmp / "startup.log").read_text()
            opened = re.search(r'ts=(\S+) .*msg="Opened the database"', log)
            loaded = re.search(r'ts=(\S+) .*msg="Loaded the monitors"', log)
            assert opened and loaded, log
            runs.append(
                (
                    _ts(loaded.group(1)) - started,
                    _ts(loaded.group(1)) - _ts(opened.group(1)),
                    answered,
                )
            )
        return {
            "monitors": args.monitors,
            "results": args.monitors * 10,
            # From the process's start to the monitors loaded and scheduled (engine.ready;
            # the server listens right after), the engine's part of it, and until the first
            # answer of /monitors/metrics, which renders all of them.
            "ready_s": [round(r[0], 3) for r in runs],
            "engine_load_s": [round(r[1], 3) for r in runs],
            "first_monitors_metrics_s": [round(r[2], 3) for r in runs],
        }


def _ts(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def history(args: argparse.Namespace) -> dict[str, object]:
    per_monitor = 50_000
    with tempfile.TemporaryDirectory() as scratch:
        path = str(Path(scratch) / "sonde.db")
        count = max(1, args.results // per_monitor)
        records = [monitor(i, "127.0.0.1:9", 60.0) for i in range(count)]
        asyncio.run(create_monitors(path, records))

        async def fill_and_page() -> dict[str, object]:
            db = Database(path)
            await db.start()
            now = time.time()

            def insert(conn, key: int) -> None:  # type: ignore[no-untyped-def]
                rows = []
                for i in range(per_monitor):
                    down = i % 20 == 0  # one in 20 failed, with a reason and an error
                    rows.append(
                        (key, now - (per_monitor - i) * 60, "down" if down else "up",
                         None if down else 0.0002 + (i % 7) * 1e-5,
                         "connect_refused" if down else None,
                         "connection refused" if down else None)
                    )  # fmt: skip
                conn.executemany(
                    "INSERT INTO results (monitor_key, checked_at, status, response_time, "
                    "reason, error, attempts, degraded) VALUES (?, ?, ?, ?, ?, ?, 1, 0)",
                    rows,
                )

            keys = await db.query(lambda c: [k for (k,) in c.execute("SELECT key FROM monitors")])
            for key in keys:
                await db.change(lambda c, k=key: insert(c, k))
            await db.close()  # the last connection to close checkpoints the WAL into the file
            size = os.stat(path).st_size
            db = Database(path)
            await db.start()
            total = await db.query(lambda c: c.execute("SELECT count(*) FROM results").fetchone())
            timings: dict[str, list[float]] = {"newest": [], "deep": []}
            target = records[count // 2].id
            for _ in range(args.rounds):
                for name, offset in (("newest", 0), ("deep", per_monitor - 100)):
                    start = time.perf_counter()
                    page = await db.query(
                        lambda c, o=offset: result_rows.results_page(c, target, 50, o)
                    )
                    timings[name].append(time.perf_counter() - start)
                    assert page is not None and len(page[0]) == 50
            await db.close()
            return {
                "results": total[0],
                "monitors": count,
                "db_bytes": size,
                "bytes_per_million": round(size / total[0] * 1e6),
                **{
                    f"page_{name}_ms": {
                        "median": round(statistics.median(t) * 1000, 3),
                        "p99": round(sorted(t)[int(len(t) * 0.99) - 1] * 1000, 3),
                    }
                    for name, t in timings.items()
                },
            }

        return asyncio.run(fill_and_page())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["schedule", "startup", "history"])
    parser.add_argument("--monitors", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=20.0)
    parser.add_argument("--window", type=float, default=150.0)
    parser.add_argument("--probe-window", type=float, default=60.0)
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    if args.what == "startup":
        args.rounds = min(args.rounds, 5)
    result = {"schedule": schedule, "startup": startup, "history": history}[args.what](args)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
