"""The command line of `python -m bench.compare`: options, tool checks, one run, the tables."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import BENCH, REPO
from . import __doc__ as DESCRIPTION
from .children import BenchError, Children, exit_on_signals, log
from .exporters import BLACKBOX_BIN, make_exporters, parse_variant
from .icmp import bench_icmp
from .netns import setup_netns
from .report import report
from .target import MAX_TARGETS, tcp_targets
from .workloads import Context, bench_soak, bench_startup, bench_tcp, bench_wrk

INSTALL_HINT = "apt-get install -y --no-install-recommends prometheus-blackbox-exporter wrk"
WORKLOADS: dict[str, Callable[[Context], None]] = {
    "tcp": bench_tcp,
    "wrk": bench_wrk,
    "icmp": bench_icmp,
    "soak": bench_soak,
    "startup": bench_startup,
}


def _version(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except OSError as exc:
        return f"unavailable ({exc})"
    return (proc.stdout + proc.stderr).strip().splitlines()[0] if proc.stdout + proc.stderr else "?"


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    git = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "kind": "run",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([sys.executable, "-m", "bench.compare", *sys.argv[1:]]),
        "label": args.label,
        "host": platform.node(),
        "kernel": platform.release(),
        "cpu": cpu,
        "ncpu": os.cpu_count(),
        "mem_gb": round(mem_kb / 1024 / 1024, 1),
        "loadavg_start": os.getloadavg(),
        "git": git,
        "sonde": _version([str(args.sonde_python), "-m", "sonde_exporter", "--version"]),
        "sonde_args": args.sonde_arg,
        "sonde_launcher": args.sonde_launcher,
        "variants": [vars(v) for v in args.variant],
        "blackbox": _version([args.blackbox_bin, "--version"]),
        "wrk": _version([args.wrk_bin, "--version"]) if args.wrk_bin else None,
        "client_python": _version([str(args.client_python), "--version"]),
    }


def check_tools(args: argparse.Namespace, workloads: list[str]) -> None:
    if "blackbox" in args.exporters and not os.access(args.blackbox_bin, os.X_OK):
        raise BenchError(f"{args.blackbox_bin} is missing; install it with: {INSTALL_HINT}")
    if "wrk" in workloads:
        found = shutil.which(args.wrk_bin or "wrk")
        if not found:
            raise BenchError(f"wrk is missing; install it with: {INSTALL_HINT}")
        args.wrk_bin = found
    if "sonde" in args.exporters and not Path(args.sonde_python).exists():
        raise BenchError(
            f"{args.sonde_python} is missing; create the venv first: "
            "python3 -m venv .venv && .venv/bin/pip install -e ."
        )
    probe = subprocess.run(
        [str(args.client_python), "-c", "import aiohttp"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        raise BenchError(f"{args.client_python} cannot import aiohttp (needed by the load client)")
    if "icmp" in workloads and os.geteuid() != 0:
        raise BenchError(
            "the icmp workload runs as root: raw ICMP sockets on the host, and a network "
            "namespace (unshare -n) for the datagram mode"
        )
    if "icmp" in workloads and "dgram" in args.icmp_modes and args.netns_inner is None:
        for tool in ("unshare", "ip"):
            if not shutil.which(tool):
                raise BenchError(f"{tool} is missing (apt-get install util-linux iproute2)")


def int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma list of integers, got {text!r}"
        ) from None
    if not values or any(v < 1 or v > 4096 for v in values):
        raise argparse.ArgumentTypeError("each value must be between 1 and 4096")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "workload",
        help="tcp, wrk, icmp, soak, startup, or a comma list of them (tcp,wrk); all = all five; "
        "report = print the tables of --input",
    )
    p.add_argument(
        "-c",
        "--concurrency",
        type=int_list,
        default=[1, 16, 64, 256],
        help="Python-client concurrency levels (default 1,16,64,256)",
    )
    p.add_argument(
        "--wrk-connections", type=int_list, default=[64], help="wrk -c levels (default 64)"
    )
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("-d", "--duration", type=float, default=10.0, help="seconds measured per level")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each level")
    p.add_argument("--pause", type=float, default=1.0, help="seconds between levels")
    p.add_argument(
        "--repeat", type=int, default=1, help="repeat each level N times (medians shown)"
    )
    p.add_argument(
        "--max-requests",
        type=int,
        default=200_000,
        help="request cap per level (the Python client)",
    )
    p.add_argument("--direct-rate", type=float, default=50.0, help="direct connect()s per second")
    p.add_argument("--soak-probes", type=int, default=100_000)
    p.add_argument("--soak-warmup", type=int, default=5_000)
    p.add_argument("--soak-concurrency", type=int, default=64)
    p.add_argument(
        "--soak-max-seconds", type=float, default=300.0, help="time cap of each soak leg"
    )
    p.add_argument("--startup-runs", type=int, default=5)
    p.add_argument(
        "--icmp-concurrency",
        type=int_list,
        default=[1, 64, 256],
        help="ICMP concurrency levels (default 1,64,256)",
    )
    p.add_argument(
        "--icmp-modes",
        type=lambda text: text.split(","),
        default=["raw", "dgram"],
        help="ICMP socket modes: raw (on the host, as root) and/or dgram (in a network "
        "namespace this script creates); default both",
    )
    p.add_argument("--netns-inner", default=None, help=argparse.SUPPRESS)
    p.add_argument(
        "--exporters",
        type=lambda s: s.split(","),
        default=["sonde", "blackbox"],
        help="comma list from sonde,blackbox (default both)",
    )
    p.add_argument("--sonde-python", type=Path, default=REPO / ".venv" / "bin" / "python")
    p.add_argument(
        "--sonde-launcher",
        default=None,
        help="script run by --sonde-python instead of -m sonde_exporter (lever experiments)",
    )
    p.add_argument("--sonde-arg", action="append", default=[], help="extra sonde-exporter flag")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        type=parse_variant,
        metavar="NAME=SPEC",
        help="also run a sonde variant under NAME (lever A/B; repeatable); SPEC is a launcher "
        "script, git:REV (src/ at that revision) and/or extra flags",
    )
    p.add_argument("--blackbox-bin", default=BLACKBOX_BIN)
    p.add_argument("--wrk-bin", default="wrk")
    p.add_argument(
        "--client-python",
        type=Path,
        default=None,
        help="interpreter for the load client, with aiohttp (default: --sonde-python)",
    )
    p.add_argument(
        "--targets",
        type=int,
        default=100,
        help="distinct loopback targets (127.0.0.1, 127.0.0.2, ...; one listener each, each "
        "probe takes the next); default 100",
    )
    p.add_argument("--input", type=Path, default=None, help="results file for `report`")
    p.add_argument("--label", default="", help="free text stored with the results")
    p.add_argument(
        "--out", type=Path, default=None, help="JSON lines file (default bench/results/...)"
    )
    args = p.parse_args(argv)
    if args.workload not in ("all", "report"):
        unknown = set(args.workload.split(",")) - set(WORKLOADS)
        if unknown:
            p.error(f"unknown workload {sorted(unknown)}; choose from {', '.join(WORKLOADS)}, all")
    if set(args.icmp_modes) - {"raw", "dgram"} or not args.icmp_modes:
        p.error(f"--icmp-modes takes raw and/or dgram, not {args.icmp_modes}")
    bad = set(args.exporters) - {"sonde", "blackbox"}
    if bad or not args.exporters:
        p.error(f"--exporters takes sonde and/or blackbox, not {sorted(bad)}")
    if not 1 <= args.targets <= MAX_TARGETS:
        p.error(f"--targets must be between 1 and {MAX_TARGETS}")
    if args.client_python is None:
        args.client_python = args.sonde_python
    return args


def reprint(path: Path | None) -> int:
    """Print the tables of an earlier results file again."""
    if path is None:
        log("error: report needs --input FILE.jsonl")
        return 2
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    meta: dict[str, Any] = next((r for r in rows if r.get("kind") == "run"), {})
    print(f"# {meta.get('date')}  {meta.get('cpu')} x{meta.get('ncpu')}  git {meta.get('git')}")
    print(f"# {meta.get('command')}\n")
    print(report(rows)[0])
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workload == "report":
        return reprint(args.input)
    workloads = list(WORKLOADS) if args.workload == "all" else args.workload.split(",")
    exit_on_signals()
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="sonde-bench-"))
    try:
        check_tools(args, workloads)
        if args.netns_inner is not None:
            setup_netns(args.netns_inner)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out_path = (
            args.out or BENCH / "results" / f"{stamp}-{args.workload.replace(',', '-')}.jsonl"
        )
        out_path.parent.mkdir(parents=True, exist_ok=True)
        meta = machine_info(args)
        exporters = make_exporters(args, workdir)
        with (
            out_path.open("w") as sink,
            tcp_targets(children, str(args.client_python), args.targets) as (targets, tpid),
        ):
            ctx = Context(args, children, exporters, targets, tpid, sink, workdir)
            ctx.record(meta)
            for exporter in exporters:
                seconds = exporter.launch(children)
                log(
                    f"{exporter.name} ready on 127.0.0.1:{exporter.port} (pid {exporter.pid}) "
                    f"after {seconds * 1000:.0f} ms"
                )
            for name in workloads:
                WORKLOADS[name](ctx)
            for exporter in exporters:
                if exporter.proc is None or exporter.proc.poll() is not None:
                    raise BenchError(
                        f"{exporter.name} exited during the run; see {exporter.log_path}"
                    )
            text, summary = report(ctx.rows)
            for row in summary:
                ctx.record(row)
            ctx.record(
                {
                    "kind": "end",
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "loadavg_end": os.getloadavg(),
                }
            )
        print(
            f"# {meta['date']}  {meta['cpu']} x{meta['ncpu']}  {meta['kernel']}  git {meta['git']}"
        )
        print(f"# {meta['command']}\n")
        print(text)
        print(f"results: {out_path}")
        return 0
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    finally:
        children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
