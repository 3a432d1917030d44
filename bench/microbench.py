#!/usr/bin/env python3
"""CPU cost of the pieces of one TCP probe, in process, without HTTP: where do the µs go?

Complements the py-spy profile (bench/profile.py) with absolute figures. Each line is the
CPU time (process_time, so user + kernel, and not inflated when other work preempts us)
per operation, best of --rounds. The probes go to bench/tcp_target.py on 127.0.0.1.

    .venv/bin/python bench/microbench.py            # asyncio
    .venv/bin/python bench/microbench.py --uvloop   # the same on uvloop (pip install uvloop)

Compare two versions of src/ with PYTHONPATH (it comes before the venv's editable path):
    git archive HEAD~1 src | tar -x -C /tmp/old && PYTHONPATH=/tmp/old/src .venv/bin/python ...
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sonde_exporter.config import load_config
from sonde_exporter.connect import connect
from sonde_exporter.exporter import Exporter
from sonde_exporter.handler import Probed, run_probe
from sonde_exporter.history import ProbeResult
from sonde_exporter.probe_metrics import ProbeMetrics
from sonde_exporter.prober_base import ProbeContext, ProbeLog
from sonde_exporter.probers.tcp import probe_tcp
from sonde_exporter.resolve import resolve
from sonde_exporter.targets import check_common, parse_host_port

BENCH = Path(__file__).resolve().parent


def cpu_per_op(fn: Callable[[], object], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - start) / n)
    return best


async def acpu_per_op(fn: Callable[[], Awaitable[object]], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(n):
            await fn()
        best = min(best, (time.process_time() - start) / n)
    return best


def new_ctx(loop: asyncio.AbstractEventLoop) -> ProbeContext:
    return ProbeContext(
        metrics=ProbeMetrics(),
        log=ProbeLog(bound=(("module", "tcp"), ("target", "t"))),
        deadline=loop.time() + 5,
    )


async def measure(port: int, n: int, rounds: int) -> list[tuple[str, float]]:
    loop = asyncio.get_running_loop()
    target = f"127.0.0.1:{port}"
    parsed = parse_host_port(target)
    with tempfile.TemporaryDirectory(prefix="sonde-micro-") as tmp:
        config_path = Path(tmp) / "c.yml"
        config_path.write_text("modules:\n  tcp:\n    prober: tcp\n    timeout: 5s\n")
        config = load_config(config_path)
        exporter = Exporter(config_path, config, 0.5, 100)
    module = config.modules["tcp"]
    settings = module.settings
    out: list[tuple[str, float]] = []

    def blocking_connect() -> None:
        with socket.socket() as s:
            s.connect(("127.0.0.1", port))

    async def asyncio_connect() -> None:
        s = socket.socket()
        s.setblocking(False)
        try:
            await loop.sock_connect(s, ("127.0.0.1", port))
        finally:
            s.close()

    async def prober_connect() -> None:
        s = socket.socket()
        s.setblocking(False)
        try:
            await connect(s, "127.0.0.1", port)
        finally:
            s.close()

    async def prober() -> None:
        await probe_tcp(parsed, settings, new_ctx(loop))

    probed = Probed("tcp", module, target, parsed, 5.0, False)

    async def whole_probe() -> None:
        _, probe_metrics = await run_probe(exporter, probed, 5.0, new_ctx(loop))
        probe_metrics.render().encode()

    io_n = max(1, n // 4)
    out.append(
        ("kernel floor: blocking connect() + close()", cpu_per_op(blocking_connect, io_n, rounds))
    )
    out.append(("asyncio sock_connect + close", await acpu_per_op(asyncio_connect, io_n, rounds)))
    out.append(
        (
            "the probers' connect (connect_ex) + close",
            await acpu_per_op(prober_connect, io_n, rounds),
        )
    )
    out.append(
        ("probe_tcp (prober only, fresh ProbeContext)", await acpu_per_op(prober, io_n, rounds))
    )
    out.append(("run_probe + render: all but HTTP", await acpu_per_op(whole_probe, io_n, rounds)))

    ctx = new_ctx(loop)
    _, metrics = await run_probe(exporter, probed, 5.0, ctx)
    out.append(
        (
            "  ProbeMetrics.render().encode()",
            cpu_per_op(lambda: metrics.render().encode(), n, rounds),
        )
    )

    def five_log_lines() -> None:
        log = ProbeLog(bound=(("module", "tcp"), ("target", target)))
        log.info("Beginning probe", probe="tcp", timeout_seconds=5.0)
        log.debug("Resolved target address", target="127.0.0.1", ip="127.0.0.1")
        log.debug("Dialing TCP", address="127.0.0.1", port=port)
        log.debug("Successfully dialed")
        log.info("Probe succeeded", duration_seconds=0.0001)

    out.append(
        ("  ProbeLog: the 5 lines of a successful probe", cpu_per_op(five_log_lines, n, rounds))
    )

    m = exporter.metrics

    def self_metrics() -> None:
        m.in_flight.inc()
        m.in_flight.dec()
        m.probes.labels("tcp", "success").inc()
        m.probe_duration.labels("tcp").observe(0.0001)

    out.append(
        (
            "  self-metrics: in_flight +-1, probes_total, histogram",
            cpu_per_op(self_metrics, n, rounds),
        )
    )
    log_lines = tuple(ctx.log.lines)

    def history() -> None:
        h = exporter.history
        h.add(ProbeResult(h.next_id(), "tcp", target, True, None, 0.0001, time.time(), log_lines))

    out.append(("  history: ProbeResult + add", cpu_per_op(history, n, rounds)))

    def target_checks() -> None:
        check_common(target)
        parse_host_port(target)

    out.append(
        ("  target checks: check_common + parse_host_port", cpu_per_op(target_checks, n, rounds))
    )

    async def resolve_literal() -> None:
        await resolve("127.0.0.1", "ip4", True, new_ctx(loop))

    out.append(
        (
            "  resolve() of an IP literal (+ ProbeContext)",
            await acpu_per_op(resolve_literal, n, rounds),
        )
    )
    out.append(
        (
            "  new ProbeContext + ProbeMetrics + ProbeLog",
            cpu_per_op(lambda: new_ctx(loop), n, rounds),
        )
    )

    async def timeout_block() -> None:
        async with asyncio.timeout_at(loop.time() + 5):
            await asyncio.sleep(0)

    out.append(
        (
            "  asyncio.sleep(0) alone (one loop pass)",
            await acpu_per_op(lambda: asyncio.sleep(0), n, rounds),
        )
    )

    out.append(
        (
            "  asyncio.timeout_at enter + exit around sleep(0)",
            await acpu_per_op(timeout_block, n, rounds),
        )
    )
    return out


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-n", type=int, default=20_000, help="operations per round (socket ones: n/4)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--uvloop", action="store_true")
    args = p.parse_args()
    target = subprocess.Popen(
        [sys.executable, str(BENCH / "tcp_target.py")],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert target.stdout is not None
        port = int(target.stdout.readline())
        if args.uvloop:
            import uvloop

            uvloop.install()
        rows = asyncio.run(measure(port, args.n, args.rounds))
    finally:
        target.terminate()
        target.wait(5)
    loop_name = "uvloop" if args.uvloop else "asyncio"
    print(f"CPU per operation, µs (best of {args.rounds}; event loop: {loop_name})\n")
    print("| operation | CPU µs |\n|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds * 1e6:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
