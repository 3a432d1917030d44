#!/usr/bin/env python3
"""CPU per ICMP echo probe, this tree against another git revision, raw and datagram.

Written for the traceroute (issue 10): Time Exceeded handling on the shared socket must not
make ordinary echo probes dearer. Each side runs in its own process with PYTHONPATH pointing
at its src/, calls probe_icmp in process (no HTTP) toward 127.0.0.1 (count 3, no interval)
and reports CPU per probe (user + kernel, getrusage), best of --rounds. The sides alternate
and take turns to go first; the ratio is the median of the rounds' pairs. Each side runs in a
fresh network namespace (as root) whose ping_group_range picks the socket mode.

    sudo .venv/bin/python bench/icmp_echo_cost.py --rev main
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from revisions import checkout

ROOT = Path(__file__).resolve().parent.parent
GROUP_RANGE = {"raw": "1 0", "datagram": "0 2147483647"}
CONFIG = (
    "modules:\n  ping:\n    prober: icmp\n    timeout: 5s\n    icmp: {count: 3, interval: 0s}\n"
)


def measure(n: int) -> dict[str, float | str]:
    """One side, inside its namespace: CPU per probe with the src/ on PYTHONPATH."""
    from sonde_exporter.config import parse_config
    from sonde_exporter.icmp.sockets import SOCKETS
    from sonde_exporter.probe_metrics import ProbeMetrics
    from sonde_exporter.prober_base import ProbeContext, ProbeLog
    from sonde_exporter.probers.icmp import probe_icmp
    from sonde_exporter.targets import parse_host

    settings = parse_config(CONFIG, "bench.yml").modules["ping"].settings
    target = parse_host("127.0.0.1")

    async def probes() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        for warm_up in (True, False):
            start = resource.getrusage(resource.RUSAGE_SELF)
            for _ in range(n // 10 if warm_up else n):
                ctx = ProbeContext(ProbeMetrics(), ProbeLog(), loop.time() + 5)
                await probe_icmp(target, settings, ctx)  # type: ignore[arg-type]
            end = resource.getrusage(resource.RUSAGE_SELF)
        return (end.ru_utime - start.ru_utime) / n, (end.ru_stime - start.ru_stime) / n

    user, system = asyncio.run(probes())
    mode = next(SOCKETS.endpoints()).mode.value
    return {"probe_us": (user + system) * 1e6, "user_us": user * 1e6, "mode": mode}


def run_side(src: Path, mode: str, n: int) -> dict[str, float]:
    script = (
        "ip link set lo up && "
        f"echo '{GROUP_RANGE[mode]}' > /proc/sys/net/ipv4/ping_group_range && "
        f"exec {sys.executable} {__file__} --side -n {n}"
    )
    out = subprocess.run(
        ["unshare", "--net", "--", "sh", "-c", script],
        env={**os.environ, "PYTHONPATH": str(src)},
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    result: dict[str, float] = json.loads(out.stdout.splitlines()[-1])
    if result["mode"] != mode:
        raise SystemExit(f"expected the {mode} socket, the side used {result['mode']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rev", default="HEAD~1", help="the revision to compare with")
    parser.add_argument("-n", type=int, default=3000, help="probes per round and side")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(measure(args.n)))
        return
    with tempfile.TemporaryDirectory(prefix="sonde-echo-") as tmp:
        sides = {"this tree": ROOT / "src", args.rev: checkout(args.rev, Path(tmp))}
        print(f"CPU per echo probe (count 3), best of {args.rounds} rounds of {args.n}")
        print(f"| mode | this tree | {args.rev} | this tree / {args.rev} (median of pairs) |")
        print("|---|---|---|---|")
        for mode in GROUP_RANGE:
            rounds: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
            for index in range(args.rounds):
                order = list(sides.items())
                for name, src in order if index % 2 == 0 else reversed(order):
                    rounds[name].append(run_side(src, mode, args.n))
            new, old = (min(r["probe_us"] for r in rounds[name]) for name in sides)
            paired = sorted(
                a["probe_us"] / b["probe_us"]
                for a, b in zip(rounds["this tree"], rounds[args.rev], strict=True)
            )
            print(
                f"| {mode} | {new:.1f} µs | {old:.1f} µs | {statistics.median(paired):.3f} "
                f"({paired[0]:.3f}-{paired[-1]:.3f}) |"
            )
    print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
