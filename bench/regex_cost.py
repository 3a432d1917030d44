#!/usr/bin/env python3
"""CPU per TCP probe with `expect` steps, this tree against another git revision.

Issue 9 moved `expect` from Python's re to RE2 (linear time); this measures what that costs
a probe. Each side runs in its own process with PYTHONPATH pointing at its src/, calls
probe_tcp in process (no HTTP) against a loopback banner server in a third process, and
reports CPU per probe (user and kernel, getrusage), best of --rounds. The sides alternate, taking turns
to go first, so drift from other load on the box hits both; the probe ratio is also given as
the median of the rounds' pairs, which is steadier than the ratio of the bests.

    .venv/bin/python bench/regex_cost.py --rev 2ea2664      # before the RE2 change
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from revisions import checkout

ROOT = Path(__file__).resolve().parent.parent

# An SSH-like greeting: two lines the pattern skips, then the one it matches and captures.
BANNER = (
    b"Welcome to the benchmark host, all connections are logged\r\n"
    b"Debian GNU/Linux 12 (bookworm) built 2026-11-01 for amd64\r\n"
    b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"
)
CONFIG = r"""
modules:
  banner:
    prober: tcp
    timeout: 5s
    tcp:
      query_response:
        - expect: "^SSH-2\\.0-([^ ]+) (.*)$"
          labels:
            - name: version
              value: "${1}"
"""


def serve() -> None:
    """The banner server: greet each connection and close it. Prints its port first."""
    with socket.create_server(("127.0.0.1", 0), backlog=1024) as listener:
        print(listener.getsockname()[1], flush=True)
        while True:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(BANNER)


def measure(port: int, n: int) -> dict[str, float]:
    """One side: CPU per probe and per expect search, in the src/ on PYTHONPATH."""
    from sonde_exporter.config import load_config
    from sonde_exporter.probe_metrics import ProbeMetrics
    from sonde_exporter.prober_base import ProbeContext, ProbeLog
    from sonde_exporter.probers.tcp import probe_tcp
    from sonde_exporter.targets import parse_host_port

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "config.yml")
        path.write_text(CONFIG)
        settings = load_config(path).modules["banner"].settings
    target = parse_host_port(f"127.0.0.1:{port}")
    expect = settings.query_response[0].expect  # type: ignore[attr-defined]

    async def probes() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        start = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(n):
            ctx = ProbeContext(
                metrics=ProbeMetrics(),
                log=ProbeLog(bound=(("module", "banner"),)),
                deadline=loop.time() + 5,
            )
            await probe_tcp(target, settings, ctx)
        end = resource.getrusage(resource.RUSAGE_SELF)
        return (end.ru_utime - start.ru_utime) / n, (end.ru_stime - start.ru_stime) / n

    probe_user, probe_system = asyncio.run(probes())
    lines = BANNER.splitlines()
    start = time.process_time()
    for _ in range(n * 10):
        for line in lines:
            expect.search(line)
    search_cpu = (time.process_time() - start) / (n * 10 * len(lines))
    return {
        "probe_us": (probe_user + probe_system) * 1e6,
        "probe_user_us": probe_user * 1e6,
        "probe_system_us": probe_system * 1e6,
        "search_us": search_cpu * 1e6,
    }


def run_side(src: Path, port: int, n: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, __file__, "--side", str(port), "-n", str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, float] = json.loads(out.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD~1", help="the revision to compare with")
    parser.add_argument("-n", type=int, default=2000, help="probes per round and side")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--side", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return
    if args.side is not None:
        print(json.dumps(measure(args.side, args.n)))
        return

    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        with tempfile.TemporaryDirectory(prefix="sonde-regex-") as tmp:
            sides = {"this tree": ROOT / "src", args.rev: checkout(args.rev, Path(tmp))}
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
            for index in range(args.rounds):
                order = list(sides.items())
                for name, src in order if index % 2 == 0 else reversed(order):  # who goes first
                    rounds[name].append(run_side(src, port, args.n))
    finally:
        server.terminate()
        server.wait(10)
    load = os.getloadavg()[0]
    best = {name: min(runs, key=lambda r: r["probe_us"]) for name, runs in rounds.items()}
    for name, runs in rounds.items():
        best[name] = {**best[name], "search_us": min(r["search_us"] for r in runs)}
    print(f"CPU per operation, best of {args.rounds} rounds of {args.n} (load average {load:.2f})")
    print("| side | probe_tcp with expect + label (user + kernel) | one expect search |")
    print("|---|---|---|")
    for name, v in best.items():
        print(
            f"| {name} | {v['probe_us']:.1f} µs ({v['probe_user_us']:.1f} + "
            f"{v['probe_system_us']:.1f}) | {v['search_us']:.2f} µs |"
        )
    new, old = best["this tree"], best[args.rev]
    # Rounds run back to back, so each pair saw about the same load: their ratio is steadier.
    paired = sorted(
        a["probe_user_us"] / b["probe_user_us"]
        for a, b in zip(rounds["this tree"], rounds[args.rev], strict=True)
    )
    searches = len(BANNER.splitlines())  # lines searched per probe
    extra = (new["search_us"] - old["search_us"]) * searches
    print(
        f"probe user CPU (where the matching runs), this tree / {args.rev}: median of paired "
        "rounds "
        f"{statistics.median(paired):.3f} (range {paired[0]:.3f}-{paired[-1]:.3f}); "
        f"search {new['search_us'] / old['search_us']:.2f}x, so the searches of one probe cost "
        f"{extra:+.1f} µs, {extra / old['probe_us']:+.1%} of its CPU"
    )


if __name__ == "__main__":
    main()
