"""Lever: icmplib's async_multiping against sonde's shared ICMP socket, same targets, same load.

Why sonde does without icmplib, in figures. Inside a network namespace this script creates
(bench/compare's `unshare -n` machinery, compare/netns.py), the TUN responder of the ICMP tests
(tests/icmp_netns_tools.py) answers every echo request after a known delay. Each round sends
one echo request (count=1, 56-byte payload) to each of C addresses behind it, all at once:

- sonde: C concurrent probes through the real ICMP prober on the shared socket;
- icmplib: one `async_multiping(addresses, count=1, concurrent_tasks=C)` call.

Each side runs in a fresh process of its own for `--seconds`, in both socket modes (datagram:
ping_group_range open to every group; raw: "1 0", root falls back to raw sockets). Reported:
the process's CPU per probe (getrusage around the rounds only), its open fds at the peak
(sampled every 2 ms from outside), and the RTT error: reported RTT minus the responder's delay.

    .venv/bin/pip install icmplib      # bench only; not a dependency of sonde-exporter
    .venv/bin/python bench/levers/icmplib_multiping.py [-c 64,256] [--seconds 4]

Needs root, unshare and ip (like `python -m bench.compare icmp`). Targets are only 198.18.1.x
addresses routed into the TUN device of the namespace; nothing leaves the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

LEVERS = Path(__file__).resolve().parent
sys.path[:0] = [str(LEVERS.parent), str(LEVERS.parents[1] / "tests")]

from compare import BENCH, REPO  # noqa: E402  (bench/compare: processes, namespaces, tables)
from compare.children import BenchError, Children, exit_on_signals, log  # noqa: E402
from compare.cli import int_list  # noqa: E402
from compare.netns import DATAGRAM_FOR_ALL, run_in_new_netns, setup_netns  # noqa: E402
from compare.procfs import fds  # noqa: E402
from compare.report import md_table  # noqa: E402

INSTALL_HINT = "icmplib is not installed; it is a bench-only package: .venv/bin/pip install icmplib"
MODES = {"datagram": DATAGRAM_FOR_ALL, "raw": "1 0"}
TOOLS = ("sonde", "icmplib")
TUN = {"interface": "bench0", "ipv4": "198.18.0.1/16", "ipv6": "2001:db8::1/64"}
FIRST_TARGET = ipaddress.ip_address("198.18.1.1")
TIMEOUT = 2.0
PAYLOAD = 56
T = TypeVar("T")
_AVG_RTT = re.compile(r'^probe_icmp_rtt_seconds\{stat="avg"\} (\S+)$', re.M)


def targets(concurrency: int) -> list[str]:
    return [str(FIRST_TARGET + i) for i in range(concurrency)]


# ------------------------------------------------------------------ one side, one level ----


async def sonde_rounds(mode: str, addresses: list[str], seconds: float) -> dict[str, Any]:
    from sonde_exporter.config import IcmpModule
    from sonde_exporter.icmp.sockets import SOCKETS
    from sonde_exporter.probe_metrics import ProbeMetrics
    from sonde_exporter.prober_base import ProbeContext, ProbeFailure, ProbeLog
    from sonde_exporter.probers.icmp import PROBER

    module = IcmpModule(count=1, payload_size=PAYLOAD, ip_protocol_fallback=False)
    loop = asyncio.get_running_loop()

    async def probe(address: str) -> ProbeMetrics:
        ctx = ProbeContext(ProbeMetrics(), ProbeLog(), loop.time() + TIMEOUT)
        with contextlib.suppress(ProbeFailure):
            await PROBER.probe(address, module, ctx)
        return ctx.metrics

    async def one_round() -> list[ProbeMetrics]:
        return await asyncio.gather(*(probe(a) for a in addresses))

    def rtt(metrics: ProbeMetrics) -> float | None:
        found = _AVG_RTT.search(metrics.render())
        return float(found.group(1)) if found else None

    used = SOCKETS.support(socket.AF_INET).mode.value
    if used != mode:
        raise BenchError(f"sonde uses {used} ICMP sockets here, not {mode}")
    return await measure(one_round, rtt, seconds)


async def icmplib_rounds(mode: str, addresses: list[str], seconds: float) -> dict[str, Any]:
    import icmplib

    async def one_round() -> list[icmplib.Host]:
        hosts: list[icmplib.Host] = await icmplib.async_multiping(
            addresses,
            count=1,
            timeout=TIMEOUT,
            concurrent_tasks=len(addresses),
            privileged=mode == "raw",
            payload_size=PAYLOAD,
        )
        return hosts

    def rtt(host: icmplib.Host) -> float | None:
        return host.rtts[0] / 1000 if host.rtts else None

    return await measure(one_round, rtt, seconds)


async def measure(
    one_round: Callable[[], Awaitable[list[T]]], rtt: Callable[[T], float | None], seconds: float
) -> dict[str, Any]:
    """A warm-up round, then rounds for `seconds`. CPU is counted inside the rounds only: the
    RTTs (seconds) are read from the answers outside them, sonde's from its rendered metrics."""
    await one_round()
    fds_at_start = len(os.listdir("/proc/self/fd"))
    cpu = 0.0
    rtts: list[float | None] = []
    rounds = 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        before = resource.getrusage(resource.RUSAGE_SELF)
        answers = await one_round()
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu += after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        rtts += map(rtt, answers)
        rounds += 1
    return {"rounds": rounds, "cpu_s": cpu, "rtts": rtts, "fds_at_start": fds_at_start}


def driver(args: argparse.Namespace) -> None:
    """One side at one level, in a process of its own (which imports only that side's
    library); prints one JSON line."""
    run = sonde_rounds if args.driver == "sonde" else icmplib_rounds
    addresses = targets(args.level)
    out = asyncio.run(run(args.mode, addresses, args.seconds))
    rtts = out.pop("rtts")
    answered = [r for r in rtts if r is not None]
    errors = sorted((r - args.delay_ms / 1000) * 1000 for r in answered)
    print(
        json.dumps(
            {
                **out,
                "tool": args.driver,
                "mode": args.mode,
                "concurrency": args.level,
                "probes": len(rtts),
                "lost": len(rtts) - len(answered),
                "cpu_us_per_probe": round(out["cpu_s"] / len(rtts) * 1e6, 1),
                "rtt_error_ms": {
                    "p50": round(errors[len(errors) // 2], 3),
                    "p99": round(errors[min(len(errors) - 1, len(errors) * 99 // 100)], 3),
                    "max": round(errors[-1], 3),
                },
            }
        ),
        flush=True,
    )


# ------------------------------------------------------------------ inside the namespace --


def run_driver(
    children: Children, args: argparse.Namespace, tool: str, level: int
) -> dict[str, Any]:
    """Start one driver, sample its open fds until it exits, return its line and the peak."""
    argv = [sys.executable, __file__, "--driver", tool, "--level", str(level)]
    argv += ["--mode", args.mode, "--seconds", str(args.seconds), "--delay-ms", str(args.delay_ms)]
    proc = children.start(argv, stdout=subprocess.PIPE, text=True)
    peak = 0
    stop = time.monotonic() + args.seconds + 60
    while proc.poll() is None and time.monotonic() < stop:
        with contextlib.suppress(OSError):
            peak = max(peak, fds(proc.pid))
        time.sleep(0.002)
    children.stop(proc)
    out, _ = proc.communicate()
    if proc.returncode != 0 or not out.strip():
        raise BenchError(f"{tool} at c={level} failed (exit {proc.returncode})")
    row: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    row["peak_fds"] = peak
    return row


def inner(args: argparse.Namespace) -> None:
    """In the new namespace: the responder, then each level with each tool, alternating."""
    from icmp_netns_runner import set_up_tun, start_helper, stop_helper

    setup_netns(args.netns_inner, MODES[args.mode])
    hosts = {a: {"delays_ms": [args.delay_ms]} for a in targets(max(args.concurrency))}
    spec = {**TUN, "hosts": hosts}
    children = Children()
    responder = start_helper("responder", json.dumps(spec))
    rows = []
    try:
        set_up_tun(spec)
        for index, level in enumerate(args.concurrency):
            for tool in TOOLS if index % 2 == 0 else TOOLS[::-1]:
                log(f"[{args.mode}] {tool} c={level} ...")
                rows.append(run_driver(children, args, tool, level))
    finally:
        children.stop_all()
        seen = stop_helper(responder)
    late = max(host["max_late_ms"] for host in seen.values())
    with args.out.open("w") as sink:
        for row in rows:
            sink.write(json.dumps({**row, "responder_max_late_ms": round(late, 3)}) + "\n")


# ------------------------------------------------------------------ on the host ----------


def report(rows: list[dict[str, Any]]) -> str:
    table = []
    for row in rows:
        base = next(
            r
            for r in rows
            if (r["tool"], r["mode"], r["concurrency"])
            == ("sonde", row["mode"], row["concurrency"])
        )
        error = row["rtt_error_ms"]
        table.append(
            [
                row["mode"],
                row["concurrency"],
                row["tool"],
                row["probes"],
                row["cpu_us_per_probe"],
                f"{row['cpu_us_per_probe'] / base['cpu_us_per_probe']:.2f}x",
                row["peak_fds"],
                f"{error['p50']} / {error['p99']} / {error['max']}",
                row["lost"],
                row["responder_max_late_ms"],
            ]
        )
    headers = [
        "mode",
        "c",
        "tool",
        "probes",
        "CPU µs/probe",
        "vs sonde",
        "peak fds",
        "RTT error ms p50 / p99 / max",
        "lost",
        "responder late ms",
    ]
    text: str = md_table(headers, table)
    return text


def outer(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        raise BenchError("needs root: network namespaces, TUN devices, raw sockets")
    try:
        import icmplib  # noqa: F401
    except ImportError:
        raise BenchError(INSTALL_HINT) from None
    load_start = os.getloadavg()
    children = Children()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sonde-icmplib-") as workdir:
        for mode in args.modes:
            out = Path(workdir) / f"{mode}.jsonl"
            argv = [__file__, "--mode", mode, "--out", str(out), "--seconds", str(args.seconds)]
            argv += ["--delay-ms", str(args.delay_ms), "-c", ",".join(map(str, args.concurrency))]
            budget = len(args.concurrency) * len(TOOLS) * (args.seconds + 30) + 60
            code = run_in_new_netns(children, argv, budget, "--netns-inner", f"[{mode}]")
            if code != 0 or not out.exists():
                raise BenchError(f"the {mode} run in a namespace failed (exit {code})")
            rows += [json.loads(line) for line in out.read_text().splitlines()]
    stamp = datetime.now(UTC)
    path = BENCH / "results" / f"{stamp:%Y%m%dT%H%M%SZ}-icmplib.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"kind": "run", "date": stamp.isoformat(timespec="seconds")}
    meta["argv"] = sys.argv
    meta["git"] = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    meta["icmplib"] = version("icmplib")
    meta["loadavg_start"], meta["loadavg_end"] = load_start, os.getloadavg()
    path.write_text("".join(json.dumps(r) + "\n" for r in [meta, *rows]))
    print(f"# {meta['date']}  git {meta['git']}  icmplib {meta['icmplib']}")
    print(f"# load average {load_start[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(f"# {' '.join(sys.argv)}\n")
    print(report(rows))
    print(f"\nresults: {path}")
    return 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-c", "--concurrency", type=int_list, default=[64, 256])
    p.add_argument("--seconds", type=float, default=4.0, help="measured seconds per side and level")
    p.add_argument("--delay-ms", type=float, default=20.0, help="the responder's reply delay")
    p.add_argument(
        "--modes", type=lambda text: text.split(","), default=list(MODES), help="datagram,raw"
    )
    p.add_argument("--mode", choices=list(MODES), help=argparse.SUPPRESS)
    p.add_argument("--netns-inner", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--driver", choices=TOOLS, help=argparse.SUPPRESS)
    p.add_argument("--level", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if set(args.modes) - set(MODES):
        p.error(f"--modes takes datagram and/or raw, not {args.modes}")
    return args


def main() -> int:
    args = parse_args()
    exit_on_signals()
    try:
        if args.driver:
            driver(args)
        elif args.netns_inner:
            inner(args)
        else:
            return outer(args)
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
