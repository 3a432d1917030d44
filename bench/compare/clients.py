"""One level of load against one exporter: the Python load generator with the direct sampler
beside it, or wrk. Each runs in its own process, started and stopped here."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import time
from typing import Any

from . import BENCH, REPO, procfs
from .children import BenchError, Children
from .exporters import Exporter
from .loopback import check_probe_url

WRK_SCRIPT = BENCH / "compare" / "wrk_targets.lua"


def run_load(
    children: Children,
    args: argparse.Namespace,
    exporter: Exporter,
    targets: list[str],
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    max_requests: int,
    target_pid: int | None,
    direct: str | None,
    kind: str = "tcp",
) -> dict[str, Any]:
    """One level of load.py against one exporter, spread over `targets`; its JSON line, with
    the direct sampler's figures under "direct" when `direct` (tcp:HOST:PORT or icmp:HOST)."""
    python = str(args.client_python)
    argv = [python, "-m", "bench.compare.load", "--url-template"]
    argv += [exporter.probe_url("{target}", kind), "--targets", ",".join(targets)]
    argv += ["-c", str(concurrency), "--duration", str(duration), "--warmup", str(warmup)]
    argv += ["--max-requests", str(max_requests), "--timeout", "10", "--label", exporter.name]
    argv += ["--exporter-pid", str(exporter.pid)]
    if target_pid is not None:
        argv += ["--target-pid", str(target_pid)]
    for metric in exporter.modules[kind].metrics:
        argv += ["--metric", metric]
    sampler = None
    if direct:
        sampler = children.start(
            [
                python,
                "-m",
                "bench.compare.direct",
                direct,
                "--rate",
                str(args.direct_rate),
                "--seconds",
                str(warmup + duration),
            ],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
    result = _json_line(children, argv, warmup + duration + 60, exporter)
    if sampler is not None:
        out, _ = _finish(children, sampler, 60)
        if sampler.returncode != 0:
            raise BenchError(f"the direct sampler failed (exit {sampler.returncode})")
        result["direct"] = json.loads(out)
    return result


def _finish(children: Children, proc: subprocess.Popen[Any], timeout: float) -> tuple[Any, Any]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{proc.args!r} ran over {timeout:.0f} s") from None
    finally:
        children.stop(proc)


def _json_line(
    children: Children, argv: list[str], timeout: float, exporter: Exporter
) -> dict[str, Any]:
    err_path = exporter.workdir / "load.err"
    with err_path.open("w") as err:
        proc = children.start(
            argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err
        )
        out, _ = _finish(children, proc, timeout)
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BenchError(f"load failed (exit {proc.returncode}): {err_path.read_text()[-1500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def accuracy(result: dict[str, Any], metric: str) -> dict[str, Any] | None:
    """p99 of the exporter's reported figure against the direct connect() p99 (ms)."""
    reported = (result.get("reported_ms") or {}).get(metric) or {}
    direct = (result.get("direct") or {}).get("ms") or {}
    if reported.get("p99") is None or direct.get("p99") is None:
        return None
    return {
        "metric": metric,
        "reported_p50_ms": reported["p50"],
        "reported_p99_ms": reported["p99"],
        "direct_p50_ms": direct["p50"],
        "direct_p99_ms": direct["p99"],
        "direct_n": direct["n"],
        "direct_fails": result["direct"]["fails"],
        "error_p99_ms": round(reported["p99"] - direct["p99"], 3),
    }


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(value: str, unit: str) -> float:
    return float(value) * _WRK_UNITS[unit]


def parse_wrk(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if m := re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m),", text):
        out["requests"] = int(m.group(1))
        out["wrk_seconds"] = _ms(m.group(2), m.group(3)) / 1000
    if m := re.search(r"Requests/sec:\s+([\d.]+)", text):
        out["requests_per_s"] = float(m.group(1))
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        out["non_2xx"] = int(m.group(1))
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    ):
        out["socket_errors"] = dict(
            zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True)
        )
    latency = {
        f"p{pct}": round(_ms(value, unit), 3)
        for pct, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    }
    if latency:
        out["latency_ms"] = latency
    if m := re.search(r"PROBE_SUCCESS ok=(\d+) failed=(\d+)", text):
        ok, failed = int(m.group(1)), int(m.group(2))
        out["probe_success_ok"], out["probe_success_failed"] = ok, failed
        out["success_share"] = round(ok / (ok + failed), 4) if ok + failed else None
    return out


def run_wrk(
    children: Children,
    args: argparse.Namespace,
    exporter: Exporter,
    targets: list[str],
    connections: int,
    duration: float,
) -> dict[str, Any]:
    """One wrk run over `targets` (its Lua script takes them in turn); exporter CPU and peak
    RSS are read from /proc around it."""
    argv = [
        args.wrk_bin,
        f"-t{args.wrk_threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(WRK_SCRIPT),
        "-H",
        "Accept-Encoding: identity",
        exporter.probe_url(targets[0]),
        "--",
        "/" + exporter.probe_url("{target}").split("/", 3)[3],
        *targets,
    ]
    for target in targets:  # wrk itself checks nothing
        check_probe_url(exporter.probe_url(target))
    # The whole process group counts, so a multi-worker (SO_REUSEPORT) exporter is measured
    # in full; for a single process this is the same as its own /proc figures.
    pids = procfs.group_pids(exporter.pid)
    hwm_reset = all([procfs.reset_hwm(pid) for pid in pids])
    cpu0, mach0 = procfs.group_cpu_s(exporter.pid), procfs.machine_cpu()
    client0, t0 = procfs.children_cpu_s(), time.perf_counter()
    proc = children.start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=duration + 30)
    finally:
        children.stop(proc)
    wall = time.perf_counter() - t0
    cpu = procfs.group_cpu_s(exporter.pid) - cpu0
    hwm_kb = sum(procfs.status(pid).get("VmHWM", 0) for pid in pids)
    if proc.returncode != 0:
        raise BenchError(f"wrk failed (exit {proc.returncode}):\n{out[-1500:]}")
    result = parse_wrk(out)
    requests = result.get("requests") or 0
    result.update(
        exporter=exporter.name,
        connections=connections,
        threads=args.wrk_threads,
        exporter_cpu_s=round(cpu, 3),
        cpu_s_per_1000_probes=round(cpu / requests * 1000, 4) if requests else None,
        exporter_cpu_cores=round(cpu / wall, 3),
        processes=len(pids),
        peak_rss_mb_hwm=round(hwm_kb / 1024, 1) if hwm_reset else None,
        client_cpu_cores=round((procfs.children_cpu_s() - client0) / wall, 3),
        machine_cpu_busy_share=procfs.busy_share(mach0, procfs.machine_cpu()),
    )
    return result
