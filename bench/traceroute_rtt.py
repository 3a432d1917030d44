#!/usr/bin/env python3
"""How far a traceroute's hop RTTs are from the emulated router delays: the tight figure.

tests/test_traceroute_netns.py checks hops and RTTs against a chain of routers emulated by
the TUN responder (tests/icmp_netns_tools.py), with a bound that holds on a loaded box. This
runs the same set-up --runs times per socket mode (raw as root, datagram as nobody, each in a
fresh network namespace): --targets targets at once, each behind 8 routers that answer hop k
after k * 5 ms, the target at hop 9 after 45 ms. It prints the error distribution (measured
minus emulated) and how late the responder itself was.

    sudo .venv/bin/python bench/traceroute_rtt.py --runs 10
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).resolve().parent.parent / "tests" / "icmp_netns_runner.py"
MODES = {"raw": ("1 0", "root"), "datagram": ("0 2147483647", "nobody")}
HOP_MS = 5.0
ROUTERS = 8


def spec(mode: str, targets: int) -> dict[str, object]:
    group_range, user = MODES[mode]
    hosts = {
        f"198.18.0.{10 + t}": {
            "routers": [f"198.18.{1 + t}.{k}" for k in range(1, ROUTERS + 1)],
            "hop_delay_ms": HOP_MS,
            "delays_ms": [(ROUTERS + 1) * HOP_MS],
        }
        for t in range(targets)
    }
    return {
        "ping_group_range": group_range,
        "user": user,
        "config": "modules: {}\n",
        "batches": [],
        "responder": {
            "interface": "bench0",
            "ipv4": "198.18.0.1/16",
            "ipv6": "2001:db8::1/64",
            "hosts": hosts,
        },
        "traceroutes": {"rounds": [[{"target": h, "max_hops": 12} for h in hosts]]},
    }


def run(mode: str, targets: int) -> tuple[list[float], float]:
    proc = subprocess.run(
        ["unshare", "--net", "--", sys.executable, str(RUNNER)],
        input=json.dumps(spec(mode, targets)),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONPATH": str(RUNNER.parent.parent / "src")},
    )
    out = json.loads(proc.stdout)
    errors = []
    for trace in out["traceroutes"]:
        assert trace["reached"] and len(trace["hops"]) == ROUTERS + 1, trace
        errors += [hop[2] * 1000 - hop[0] * HOP_MS for hop in trace["hops"]]
    late = max(h["max_late_ms"] for h in out["helpers"]["responder"].values())
    return errors, late


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--targets", type=int, default=6, help="sweeps at once")
    args = parser.parse_args()
    print(
        f"hop RTT minus emulated delay, ms: {args.runs} runs x {args.targets} sweeps x "
        f"{ROUTERS + 1} hops per mode (load average {os.getloadavg()[0]:.2f})"
    )
    print("| mode | min | median | p99 | max | responder late, max |")
    print("|---|---|---|---|---|---|")
    for mode in MODES:
        errors: list[float] = []
        lates: list[float] = []
        for _ in range(args.runs):
            run_errors, late = run(mode, args.targets)
            errors += run_errors
            lates.append(late)
        errors.sort()
        p99 = errors[min(len(errors) - 1, int(0.99 * len(errors)))]
        print(
            f"| {mode} | {errors[0]:+.3f} | {statistics.median(errors):+.3f} | {p99:+.3f} | "
            f"{errors[-1]:+.3f} | {max(lates):.3f} |"
        )


if __name__ == "__main__":
    main()
