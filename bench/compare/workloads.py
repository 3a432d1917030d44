"""The workloads that need no namespace: tcp (the Python client at each level), wrk, soak and
start-up. Each records its rows through the run's Context."""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from . import procfs
from .children import Children, log
from .clients import accuracy, run_load, run_wrk
from .exporters import Exporter, interleaved


@dataclass
class Context:
    """One run: its options, its processes, the targets, and where rows go."""

    args: argparse.Namespace
    children: Children
    exporters: list[Exporter]
    targets: list[str]
    target_pid: int
    sink: TextIO
    workdir: Path
    rows: list[dict[str, Any]] = field(default_factory=list)

    def record(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.sink.write(json.dumps(row) + "\n")
        self.sink.flush()


def bench_tcp(ctx: Context) -> None:
    args = ctx.args
    run = 0
    for repeat in range(1, args.repeat + 1):
        for concurrency in args.concurrency:
            for exporter in interleaved(ctx.exporters, run):
                log(f"[tcp] {exporter.name} c={concurrency} repeat={repeat} ...")
                user0, sys0 = procfs.user_sys_s(exporter.pid)
                res = run_load(
                    ctx.children,
                    args,
                    exporter,
                    ctx.targets,
                    concurrency=concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                    max_requests=args.max_requests,
                    target_pid=ctx.target_pid,
                    direct=f"tcp:{ctx.targets[0]}",
                )
                res["accuracy"] = accuracy(res, exporter.modules["tcp"].rtt_metric)
                # user vs kernel split of the exporter's CPU over the whole client run
                user1, sys1 = procfs.user_sys_s(exporter.pid)
                res["exporter_kernel_share"] = round(
                    (sys1 - sys0) / max(1e-9, user1 - user0 + sys1 - sys0), 3
                )
                # the load generator's "exporter" block (pid, CPU, RSS) becomes "exporter_proc"
                res["exporter_proc"] = res.pop("exporter", None)
                if len(procfs.group_pids(exporter.pid)) > 1 and res["exporter_proc"]:
                    # the load generator reads one pid; a multi-worker exporter is measured by wrk
                    res["exporter_proc"]["cpu_s_per_1000_probes"] = None
                    res["exporter_proc"]["peak_rss_mb_hwm"] = None
                ctx.record({**res, "kind": "tcp", "exporter": exporter.name, "repeat": repeat})
                log(f"      {res['probes_per_s']}/s ok={res['success_share']}")
                time.sleep(args.pause)
            run += 1


def bench_wrk(ctx: Context) -> None:
    args = ctx.args
    run = 0
    for repeat in range(1, args.repeat + 1):
        for connections in args.wrk_connections:
            for exporter in interleaved(ctx.exporters, run):
                log(f"[wrk] {exporter.name} -c{connections} repeat={repeat} ...")
                run_wrk(ctx.children, args, exporter, ctx.targets, connections, 1.0)  # warm-up
                res = run_wrk(ctx.children, args, exporter, ctx.targets, connections, args.duration)
                ctx.record({**res, "kind": "wrk", "repeat": repeat})
                log(f"      {res.get('requests_per_s')}/s ok={res.get('success_share')}")
                time.sleep(args.pause)
            run += 1


def snapshot(pid: int) -> dict[str, Any]:
    status = procfs.status(pid)
    return {
        "rss_mb": round(status["VmRSS"] / 1024, 2),
        "fds": procfs.fds(pid),
        "threads": status["Threads"],
    }


def bench_soak(ctx: Context) -> None:
    args = ctx.args
    for exporter in ctx.exporters:
        log(f"[soak] {exporter.name}: {args.soak_warmup} warm-up probes, then {args.soak_probes}")
        common = {
            "concurrency": args.soak_concurrency,
            "warmup": 0.0,
            "target_pid": ctx.target_pid,
            "direct": None,
        }
        run_load(
            ctx.children,
            args,
            exporter,
            ctx.targets,
            duration=args.soak_max_seconds,
            max_requests=args.soak_warmup,
            **common,
        )
        time.sleep(1.0)  # let the client's keep-alive connections close
        before = snapshot(exporter.pid)
        res = run_load(
            ctx.children,
            args,
            exporter,
            ctx.targets,
            duration=args.soak_max_seconds,
            # the first wave of requests starts before the window opens and is not counted
            max_requests=args.soak_probes + args.soak_concurrency,
            **common,
        )
        time.sleep(1.0)
        after = snapshot(exporter.pid)
        row = {
            "kind": "soak",
            "exporter": exporter.name,
            "concurrency": args.soak_concurrency,
            "probes": res["probes"],
            "probes_per_s": res["probes_per_s"],
            "success_share": res["success_share"],
            "errors": res["errors"],
            "before": before,
            "after": after,
            "rss_growth_mb": round(after["rss_mb"] - before["rss_mb"], 2),
            "fd_growth": after["fds"] - before["fds"],
            "peak_rss_mb_hwm": (res.get("exporter") or {}).get("peak_rss_mb_hwm"),
            "cpu_s_per_1000_probes": (res.get("exporter") or {}).get("cpu_s_per_1000_probes"),
            "tcp_states_end": res.get("tcp_states_end"),
        }
        ctx.record(row)
        log(
            f"      RSS {before['rss_mb']} -> {after['rss_mb']} MB, fds {before['fds']} -> "
            f"{after['fds']}"
        )


def bench_startup(ctx: Context) -> None:
    """Fresh processes (not the ones serving the other workloads), timed exec -> /-/ready."""
    args = ctx.args
    for exporter in ctx.exporters:
        times = []
        for _ in range(args.startup_runs):
            fresh = Exporter(**{**exporter.__dict__, "proc": None, "log_file": None, "port": 0})
            try:
                times.append(fresh.launch(ctx.children))
            finally:
                fresh.stop(ctx.children)
            time.sleep(0.2)
        ms = sorted(round(t * 1000, 1) for t in times)
        ctx.record(
            {
                "kind": "startup",
                "exporter": exporter.name,
                "runs": len(ms),
                "ms": ms,
                "min_ms": ms[0],
                "median_ms": statistics.median(ms),
                "max_ms": ms[-1],
            }
        )
        log(f"[startup] {exporter.name}: {ms} ms")
