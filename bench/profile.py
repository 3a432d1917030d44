#!/usr/bin/env python3
"""Profile sonde-exporter under TCP probe load with py-spy, and say where its CPU goes.

Starts the loopback TCP targets and sonde-exporter (as bench/compare does), drives its
load generator at one concurrency level, and samples the exporter with `py-spy record`
meanwhile. Prints the share of on-CPU samples by area (HTTP server, handler, prober,
rendering, self-metrics, logging, event loop...), by file and by function, and keeps the
collapsed stacks under bench/results/ (feed them to a flame graph tool if you like).

    pip install py-spy            # into the venv; not a project dependency
    .venv/bin/python bench/profile.py -c 64 -d 20
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from compare import BENCH, REPO
from compare.children import BenchError, Children, exit_on_signals, log
from compare.clients import run_load
from compare.exporters import make_exporters
from compare.procfs import user_sys_s
from compare.report import md_table
from compare.target import tcp_targets

# Areas, matched against a frame's file path (first match wins), from the leaf upward for
# "self" time. Order matters: sonde's own files before the libraries they call.
AREAS: list[tuple[str, str]] = [
    ("sonde: metrics rendering", r"sonde_exporter/metrics\.py"),
    (
        "sonde: per-probe log lines",
        r"^(\w+\.)?(_add|info|debug|error|warn|format|quote|timestamp|text) \(.*sonde_exporter/(probe|logs)\.py",
    ),
    ("sonde: history", r"sonde_exporter/history\.py"),
    ("sonde: address choice", r"sonde_exporter/resolve\.py|/ipaddress\.py"),
    ("sonde: target checks", r"sonde_exporter/targets\.py"),
    ("sonde: TCP prober", r"sonde_exporter/probers/"),
    ("sonde: handler", r"sonde_exporter/(handler|probe|server|state)\.py"),
    ("self-metrics (prometheus_client)", r"prometheus_client/"),
    ("logging module", r"/logging/"),
    (
        "aiohttp: request parsing / protocol",
        r"aiohttp/(web_protocol|http_parser|_http_parser|base_protocol|streams)",
    ),
    (
        "aiohttp: request object, query, routing",
        r"aiohttp/(web_request|web_urldispatcher|web_app|helpers)|/multidict/|/yarl/|/propcache/",
    ),
    ("aiohttp: response writing", r"aiohttp/(web_response|http_writer|_http_writer|abc|payload)"),
    ("aiohttp: other", r"/aiohttp/"),
    (
        "asyncio: sock_connect (incl. the connect() syscall), add/remove reader",
        r"^(\w+\.)?(sock_connect|_sock_connect|_sock_connect_cb|_add_writer|_remove_writer|_ensure_fd_no_transport|_add_reader|_remove_reader) \(.*asyncio/selector_events\.py",
    ),
    ("asyncio: transport read/write", r"asyncio/selector_events\.py"),
    ("asyncio: timeouts", r"asyncio/timeouts\.py"),
    ("asyncio: event loop, tasks, futures", r"asyncio/|/selectors\.py|uvloop"),
    ("socket module", r"/socket\.py"),
    ("dataclasses / enum / typing", r"/(dataclasses|enum|typing|contextlib)\.py"),
]
_AREAS = [(name, re.compile(pattern)) for name, pattern in AREAS]


def area_of(frame: str) -> str | None:
    for name, pattern in _AREAS:
        if pattern.search(frame):
            return name
    return None


def parse_collapsed(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def summarize(stacks: list[tuple[list[str], int]], top: int) -> str:
    total = sum(n for _, n in stacks)
    by_area: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        # self time: the leaf's area; frames in C code or unknown files take their caller's
        area = None
        for frame in reversed(frames):
            area = area_of(frame)
            if area is not None:
                break
        by_area[area or "other"] += n
        leaf = frames[-1]
        match = re.search(r"\(([^)]*?)(?::\d+)?\)$", leaf)
        by_file[_short(match.group(1)) if match else leaf] += n
        for func in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            inclusive[_short(func)] += n

    def pct(n: int) -> str:
        return f"{100 * n / total:.1f}%"

    parts = [
        f"{total} on-CPU samples\n",
        "Self time by area (leaf frame, or its nearest caller in a known area)\n",
        md_table(["area", "share"], [[a, pct(n)] for a, n in by_area.most_common()]),
        "\nSelf time by file (top)\n",
        md_table(["file", "share"], [[f, pct(n)] for f, n in by_file.most_common(top)]),
        "\nInclusive time by function (top)\n",
        md_table(["function", "share"], [[f, pct(n)] for f, n in inclusive.most_common(top)]),
    ]
    return "\n".join(parts) + "\n"


def _short(text: str) -> str:
    return re.sub(r"/\S*?/(site-packages|lib/python3\.\d+|src)/", "", text)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("-c", "--concurrency", type=int, default=64)
    p.add_argument("-d", "--duration", type=float, default=20.0, help="seconds sampled")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--native", action="store_true", help="also sample C frames (py-spy --native)")
    p.add_argument(
        "--nonblocking",
        action="store_true",
        help="do not pause the exporter to sample (less overhead, but torn stacks)",
    )
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--sonde-python", type=Path, default=REPO / ".venv" / "bin" / "python")
    p.add_argument("--sonde-launcher", default=None)
    p.add_argument("--sonde-arg", action="append", default=[])
    p.add_argument("--py-spy", default=None, help="py-spy binary (default: venv, then PATH)")
    p.add_argument("--targets", type=int, default=100, help="distinct loopback targets")
    p.add_argument("--load", type=Path, default=None, help="only summarize this collapsed file")
    args = p.parse_args()
    if args.load is not None:
        print(summarize(parse_collapsed(args.load), args.top))
        return 0
    args.exporters = ["sonde"]
    args.variant = []
    args.client_python = args.sonde_python
    args.direct_rate = 50.0
    exit_on_signals()
    pyspy = (
        args.py_spy
        or shutil.which("py-spy", path=str(args.sonde_python.parent))
        or shutil.which("py-spy")
    )
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="sonde-profile-"))
    try:
        if not pyspy:
            raise BenchError("py-spy not found; install it with: .venv/bin/pip install py-spy")
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = BENCH / "results" / f"{stamp}-profile-c{args.concurrency}.collapsed"
        out.parent.mkdir(parents=True, exist_ok=True)
        (sonde,) = make_exporters(args, workdir)
        with tcp_targets(children, str(args.client_python), args.targets) as (targets, tpid):
            sonde.launch(children)
            # a short unsampled run first, so imports and caches are warm
            run_load(
                children,
                args,
                sonde,
                targets,
                concurrency=args.concurrency,
                duration=2,
                warmup=0.5,
                max_requests=50_000,
                target_pid=tpid,
                direct=None,
            )
            spy_argv = [
                pyspy,
                "record",
                "--pid",
                str(sonde.pid),
                "--rate",
                str(args.rate),
                "--duration",
                str(int(args.duration)),
                "--format",
                "raw",
                "--output",
                str(out),
            ]
            if args.native:
                spy_argv.append("--native")
            if args.nonblocking:
                spy_argv.append("--nonblocking")
            spy = None

            def start_spy() -> None:
                nonlocal spy
                spy = children.start(
                    spy_argv,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )

            user0, sys0 = user_sys_s(sonde.pid)
            timer = threading.Timer(args.warmup, start_spy)
            timer.start()
            res = run_load(
                children,
                args,
                sonde,
                targets,
                concurrency=args.concurrency,
                duration=args.duration + 1,
                warmup=args.warmup,
                max_requests=1_000_000,
                target_pid=tpid,
                direct=None,
            )
            timer.join()
            user1, sys1 = user_sys_s(sonde.pid)
            assert spy is not None
            _, err = spy.communicate(timeout=args.duration + 30)
            if spy.returncode != 0 or not out.exists():
                raise BenchError(f"py-spy failed: {err.decode()[-1000:]}")
        proc = res.get("exporter") or {}
        print(
            f"# {stamp} profile of sonde-exporter, TCP connect, c={args.concurrency}, "
            f"{args.duration:g} s at {args.rate} Hz{' (native)' if args.native else ''}"
        )
        print(
            f"# load: {res['probes_per_s']} probes/s, exporter CPU "
            f"{proc.get('cpu_s_per_1000_probes')} s/1000 probes ({proc.get('cpu_cores')} cores, "
            f"under py-spy), success {res['success_share']}"
        )
        print(
            f"# exporter CPU split over the run: user {user1 - user0:.2f} s, kernel "
            f"{sys1 - sys0:.2f} s ({100 * (sys1 - sys0) / (user1 - user0 + sys1 - sys0):.0f}% "
            "kernel; py-spy samples the Python stack of both)\n"
        )
        print(summarize(parse_collapsed(out), args.top))
        print(f"collapsed stacks: {out}")
        return 0
    except BenchError as exc:
        log(f"error: {exc}")
        return 2
    finally:
        children.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
