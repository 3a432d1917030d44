"""The HTTP load generator: closed-loop GETs of /probe URLs, one JSON line of figures.

`--concurrency` workers each send their next request as soon as their last one is answered,
taking the URLs in turn (one per distinct target, so the load spreads over all of them the
way Prometheus' scrapes of many targets do). After `--warmup` seconds a window of
`--duration` seconds opens; what completes inside it is counted: HTTP status, scrape latency
(p50/p90/p99), probe_success, the `--metric` values each body reports, errors by kind. With
`--exporter-pid` it also reads that process's CPU, peak RSS, threads and fds over the window,
and with `--target-pid` the target server's CPU.

Bounded: at most `--max-requests` requests (warm-up included), and nothing runs past
warm-up + duration + `--timeout`. Every URL must name a loopback exporter and loopback
targets (`loopback.py`); there is no way around it.

    python -m bench.compare.load --url-template \\
        'http://127.0.0.1:9115/probe?module=tcp&target={target}' \\
        --targets 127.0.0.1:8000,127.0.0.2:8000 -c 16 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from . import procfs
from .loopback import check_probe_url
from .stats import summary_ms

RSS_PERIOD = 0.05  # seconds between two samples of the exporter's VmRSS


@dataclass
class Tally:
    """What the answers that completed inside the window said."""

    wanted: dict[bytes, str]
    latencies: list[float] = field(default_factory=list)
    success: Counter[float | None] = field(default_factory=Counter)
    status: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    def answer(self, status: int, body: bytes, seconds: float) -> None:
        self.status[status] += 1
        if status != 200:
            return
        self.latencies.append(seconds)
        success: float | None = None
        for line in body.split(b"\n"):
            name, _, value = line.rpartition(b" ")
            if name == b"probe_success":
                success = _number(value)
            elif name in self.wanted and (number := _number(value)) is not None:
                self.metrics.setdefault(self.wanted[name], []).append(number)
        self.success[success] += 1


def _number(text: bytes) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class Window:
    """The measurement window, and the figures of the watched processes across it."""

    def __init__(self, exporter_pid: int | None, target_pid: int | None) -> None:
        self.exporter_pid, self.target_pid = exporter_pid, target_pid
        self.open = self.hwm_reset = False
        self.first: dict[str, Any] = {}
        self.last: dict[str, Any] = {}
        self.peak_rss_kb = self.peak_threads = 0
        self._sampler: asyncio.Task[None] | None = None

    def _read(self) -> dict[str, Any]:
        return {
            "t": time.perf_counter(),
            "client": time.process_time(),
            "machine": procfs.machine_cpu(),
            "exporter": procfs.cpu_s(self.exporter_pid) if self.exporter_pid else None,
            "target": procfs.cpu_s(self.target_pid) if self.target_pid else None,
        }

    async def _sample_rss(self, pid: int) -> None:
        while True:
            now = procfs.status(pid)
            self.peak_rss_kb = max(self.peak_rss_kb, now.get("VmRSS", 0))
            self.peak_threads = max(self.peak_threads, now.get("Threads", 0))
            await asyncio.sleep(RSS_PERIOD)

    def start(self) -> None:
        if self.exporter_pid:
            self.hwm_reset = procfs.reset_hwm(self.exporter_pid)
            self._sampler = asyncio.create_task(self._sample_rss(self.exporter_pid))
        self.first = self._read()
        self.open = True

    def stop(self) -> None:
        self.open = False
        self.last = self._read()
        if self._sampler is not None:
            self._sampler.cancel()

    @property
    def seconds(self) -> float:
        return float(self.last["t"] - self.first["t"])

    def figures(self, probes: int) -> dict[str, Any]:
        """The client's, the target's, the box's and the exporter's share of the window."""
        wall = max(self.seconds, 1e-9)
        out: dict[str, Any] = {
            "client_cpu_cores": round((self.last["client"] - self.first["client"]) / wall, 3),
            "machine_cpu_busy_share": procfs.busy_share(
                self.first["machine"], self.last["machine"]
            ),
            "ncpu": os.cpu_count(),
        }
        if self.target_pid:
            out["target_cpu_cores"] = round((self.last["target"] - self.first["target"]) / wall, 3)
        if self.exporter_pid:
            cpu = self.last["exporter"] - self.first["exporter"]
            now = procfs.status(self.exporter_pid)
            out["exporter"] = {
                "pid": self.exporter_pid,
                "cpu_s": round(cpu, 3),
                "cpu_cores": round(cpu / wall, 3),
                "cpu_s_per_1000_probes": round(cpu / probes * 1000, 4) if probes else None,
                "peak_rss_mb_hwm": round(now["VmHWM"] / 1024, 1) if self.hwm_reset else None,
                "peak_rss_mb_sampled": round(self.peak_rss_kb / 1024, 1),
                "rss_mb_end": round(now["VmRSS"] / 1024, 1),
                "max_threads": self.peak_threads,
                "fds_end": procfs.fds(self.exporter_pid),
            }
        return out


async def drive(args: argparse.Namespace, urls: list[str], tally: Tally, window: Window) -> int:
    """Run the closed loop; return how many requests were sent (warm-up included)."""
    sent = 0
    stopping = False
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=args.concurrency),
        timeout=aiohttp.ClientTimeout(total=args.timeout),
        # no gzip: the client would spend CPU on inflating that is not the exporter's
        headers={"Accept-Encoding": "identity"},
    )

    async def worker() -> None:
        nonlocal sent
        while not stopping and sent < args.max_requests:
            url = urls[sent % len(urls)]
            sent += 1
            began = time.perf_counter()
            try:
                async with session.get(url) as response:
                    body = await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                if window.open:
                    tally.errors[type(exc).__name__] += 1
                continue
            if window.open:
                tally.answer(response.status, body, time.perf_counter() - began)

    async with session:
        workers = [asyncio.create_task(worker()) for _ in range(args.concurrency)]
        await asyncio.wait(workers, timeout=args.warmup)
        window.start()
        await asyncio.wait(workers, timeout=args.duration)  # returns early once the cap is hit
        window.stop()
        stopping = True
        _, late = await asyncio.wait(workers, timeout=args.timeout)
        for task in late:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for task in workers:  # a worker that died is a bug of this script: say so
            if not task.cancelled() and (exc := task.exception()) is not None:
                raise exc
    return sent


def run(args: argparse.Namespace) -> dict[str, Any]:
    template: str = args.url_template
    targets = [urllib.parse.quote(t, safe=":[]") for t in args.targets.split(",") if t]
    urls = [template.replace("{target}", t) for t in targets] if "{target}" in template else []
    if not urls:
        raise ValueError("--url-template needs {target} and --targets at least one target")
    for url in urls:
        check_probe_url(url)
    tally = Tally({m.encode(): m for m in args.metric})
    window = Window(args.exporter_pid, args.target_pid)
    sent = asyncio.run(drive(args, urls, tally, window))
    probes = len(tally.latencies)
    return {
        "label": args.label,
        "url": urls[0],
        "targets": len(urls),
        "concurrency": args.concurrency,
        "window_s": round(window.seconds, 3),
        "requests_sent": sent,
        "probes": probes,
        "probes_per_s": round(probes / window.seconds, 1) if window.seconds > 0 else None,
        "success_share": round(tally.success[1.0] / probes, 4) if probes else None,
        "http_status": {str(k): v for k, v in sorted(tally.status.items())},
        "errors": dict(tally.errors),
        "scrape_latency_ms": summary_ms(tally.latencies),
        "reported_ms": {name: summary_ms(values) for name, values in tally.metrics.items()},
        **window.figures(probes),
        "tcp_states_end": procfs.tcp_states(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--url-template", required=True, help="probe URL with {target} in it")
    p.add_argument("--targets", required=True, help="comma list of targets for {target}")
    p.add_argument("-c", "--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds not measured, first")
    p.add_argument("--max-requests", type=int, default=200_000, help="cap, warm-up included")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    p.add_argument("--metric", action="append", default=[], help="exact 'name{labels}' to read")
    p.add_argument("--exporter-pid", type=int, default=None)
    p.add_argument("--target-pid", type=int, default=None)
    p.add_argument("--label", default="")
    args = p.parse_args(argv)
    limits = {
        "--concurrency": (args.concurrency, 1, 4096),
        "--duration": (args.duration, 0.1, 3600),
        "--warmup": (args.warmup, 0, 600),
        "--max-requests": (args.max_requests, 1, 10_000_000),
        "--timeout": (args.timeout, 0.1, 120),
    }
    for flag, (value, low, high) in limits.items():
        if not low <= value <= high:
            p.error(f"{flag} must be between {low} and {high}, not {value}")
    return args


def main() -> int:
    args = parse_args()
    try:
        result = run(args)
    except ValueError as exc:
        print(f"load: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    latency = result["scrape_latency_ms"] or {}
    print(
        f"load: c={args.concurrency} {result['probes_per_s']}/s p50={latency.get('p50')} ms "
        f"p99={latency.get('p99')} ms ok={result['success_share']} errors={result['errors']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
