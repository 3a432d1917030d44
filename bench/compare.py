#!/usr/bin/env python3
"""Side-by-side benchmark of sonde-exporter and Debian's prometheus-blackbox-exporter.

One command starts a loopback TCP target (accept and close, own process), both exporters
(each with a config this script writes), runs the load, stops everything it started (also
on Ctrl-C) and prints Markdown tables of sonde against blackbox with ratios. Every run is
also written as JSON lines under bench/results/.

    python bench/compare.py all              # tcp + wrk + soak + startup
    python bench/compare.py tcp -c 1,16,64   # Python client (probe_load.py) only

See bench/README.md for what each figure means and the caveats.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
BLACKBOX_BIN = "/usr/bin/prometheus-blackbox-exporter"
INSTALL_HINT = "apt-get install -y --no-install-recommends prometheus-blackbox-exporter wrk"


@dataclass(frozen=True)
class ModuleSpec:
    """One workload's module in an exporter's config, and what to read from its answers.

    `rtt_metric` is the figure compared with the direct measurement (issue 6, target 5).
    """

    name: str
    metrics: tuple[str, ...]
    rtt_metric: str


ICMP_RTT = 'probe_icmp_duration_seconds{phase="rtt"}'
# TCP: sonde's kernel RTT from TCP_INFO; blackbox's whole probe duration (it has no
# connect-phase metric). ICMP: both report the echo RTT as the rtt phase (with count=1,
# sonde's mean of the replies is the one reply's RTT, as probe_icmp_rtt_seconds{stat="avg"}).
SONDE_MODULES = {
    "tcp": ModuleSpec(
        "tcp",
        (
            "probe_tcp_rtt_seconds",
            "probe_duration_seconds",
            'probe_tcp_duration_seconds{phase="connect"}',
        ),
        "probe_tcp_rtt_seconds",
    ),
    "icmp": ModuleSpec(
        "icmp",
        ("probe_duration_seconds", ICMP_RTT, 'probe_icmp_rtt_seconds{stat="avg"}'),
        ICMP_RTT,
    ),
}
BLACKBOX_MODULES = {
    "tcp": ModuleSpec(
        "tcp_connect",
        ("probe_duration_seconds", "probe_dns_lookup_time_seconds"),
        "probe_duration_seconds",
    ),
    "icmp": ModuleSpec("icmp", ("probe_duration_seconds", ICMP_RTT), ICMP_RTT),
}
# ICMP like for like: one echo request per probe, IPv4, and blackbox's payload size (its
# default payload is the 28 bytes "Prometheus Blackbox Exporter").
SONDE_CONFIG = """\
modules:
  tcp:
    prober: tcp
    timeout: 5s
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      count: 1
      payload_size: 28
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""
BLACKBOX_CONFIG = """\
modules:
  tcp_connect:
    prober: tcp
    timeout: 5s
  icmp:
    prober: icmp
    timeout: 5s
    icmp:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""
ICMP_TARGET = "127.0.0.1"
PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A setup problem worth one clear line (missing binary, exporter that will not start)."""


# --------------------------------------------------------------------------- processes --


class Children:
    """Every process this script starts, each in its own session, stopped on the way out."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[Any]] = []

    def start(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
        self._procs.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
        """SIGTERM the child's process group, then SIGKILL it if it lingers.

        Only while the leader lives: once it is reaped its pid (= group id) may be reused.
        """
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(grace)

    def stop_all(self) -> None:
        while self._procs:
            self.stop(self._procs.pop())


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------- /proc ------


def proc_user_sys_s(pid: int) -> tuple[float, float]:
    """(utime, stime) of a process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process (all threads), in seconds."""
    return sum(proc_user_sys_s(pid))


def group_pids(pgid: int) -> list[int]:
    """Processes of one process group: an exporter and any workers it forked."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[2]) == pgid:
                pids.append(int(entry))
    return pids


def group_cpu_s(pgid: int) -> float:
    total = 0.0
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError, ValueError):
            total += proc_cpu_s(pid)
    return total


def proc_status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def reset_hwm(pid: int) -> bool:
    """Reset VmHWM so it shows the peak of the coming window (needs root or the same uid)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def machine_cpu() -> tuple[int, int]:
    """(total, idle) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return sum(ticks[:8]), ticks[3] + ticks[4]


def busy_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    total, idle = after[0] - before[0], after[1] - before[1]
    return round(1 - idle / max(1, total), 3)


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- network ----


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(port: int, path: str, timeout: float = 1.0) -> int | None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return None
    finally:
        conn.close()


# --------------------------------------------------------------------------- exporters --


@dataclass
class Exporter:
    """How to run one exporter, and the running instance."""

    name: str
    command: Callable[[Path, int], list[str]]
    config: str
    modules: dict[str, ModuleSpec]
    workdir: Path
    env: dict[str, str] | None = None
    port: int = 0
    proc: subprocess.Popen[Any] | None = None
    log_file: TextIO | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def probe_url(self, target: str, kind: str = "tcp") -> str:
        module = self.modules[kind].name
        return f"http://127.0.0.1:{self.port}/probe?module={module}&target={target}"

    def launch(self, children: Children, timeout: float = 20.0) -> float:
        """Start on a free port; return seconds from exec to /-/ready answering 200."""
        config_path = self.workdir / f"{self.name}.yml"
        config_path.write_text(self.config)
        for _attempt in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            argv = self.command(config_path, self.port)
            self.log_file = self.log_path.open("a")
            started = time.perf_counter()
            self.proc = children.start(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self.log_file,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
            while time.perf_counter() - started < timeout:
                if self.proc.poll() is not None:
                    break
                if http_status(self.port, "/-/ready", timeout=0.5) == 200:
                    return time.perf_counter() - started
                time.sleep(0.002)
            children.stop(self.proc)
            self.log_file.close()
        tail = self.log_path.read_text()[-2000:]
        raise BenchError(f"{self.name} did not become ready; command {argv}; log tail:\n{tail}")

    def stop(self, children: Children) -> None:
        if self.proc is not None:
            children.stop(self.proc)
            self.proc = None
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


@dataclass(frozen=True)
class Variant:
    """A sonde variant for lever A/B runs: another launcher script, another git revision of
    src/, and/or extra flags."""

    name: str
    launcher: str | None = None
    rev: str | None = None
    flags: tuple[str, ...] = ()
    text: str = ""


def checkout_src(rev: str, workdir: Path, name: str) -> Path:
    """src/ as of a git revision, unpacked under workdir; return the path for PYTHONPATH."""
    dest = workdir / f"src-{name}"
    dest.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        raise BenchError(f"git archive {rev} failed: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src"


def make_exporters(args: argparse.Namespace, workdir: Path) -> list[Exporter]:
    sonde_python = str(args.sonde_python)

    def sonde_cmd(
        launcher: str | None, flags: tuple[str, ...] = ()
    ) -> Callable[[Path, int], list[str]]:
        start = ["-m", "sonde_exporter"] if launcher is None else [launcher]

        def command(config: Path, port: int) -> list[str]:
            return [
                sonde_python,
                *start,
                "--config.file",
                str(config),
                "--web.listen-address",
                f"127.0.0.1:{port}",
                "--log.level",
                "warn",
                *args.sonde_arg,
                *flags,
            ]

        return command

    def blackbox_cmd(config: Path, port: int) -> list[str]:
        return [
            args.blackbox_bin,
            f"--config.file={config}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]

    def sonde(v: Variant) -> Exporter:
        env = None
        if v.rev is not None:
            # PYTHONPATH comes before the venv's editable-install path entry.
            env = {**os.environ, "PYTHONPATH": str(checkout_src(v.rev, workdir, v.name))}
        return Exporter(
            name=v.name,
            command=sonde_cmd(v.launcher, v.flags),
            config=SONDE_CONFIG,
            modules=SONDE_MODULES,
            workdir=workdir,
            env=env,
        )

    available = {
        "sonde": sonde(Variant("sonde", args.sonde_launcher)),
        "blackbox": Exporter(
            name="blackbox",
            command=blackbox_cmd,
            config=BLACKBOX_CONFIG,
            modules=BLACKBOX_MODULES,
            workdir=workdir,
        ),
    }
    chosen = [available[name] for name in args.exporters]
    return chosen + [sonde(v) for v in args.variant]


def interleaved(exporters: list[Exporter], index: int) -> list[Exporter]:
    """Rotate who goes first, so slow drift on the shared machine hits all alike."""
    shift = index % len(exporters)
    return exporters[shift:] + exporters[:shift]


# --------------------------------------------------------------------------- target -----


@contextlib.contextmanager
def tcp_target(children: Children, python: str) -> Iterator[tuple[int, int]]:
    """Run bench/tcp_target.py; yield (port, pid)."""
    proc = children.start(
        [python, str(BENCH / "tcp_target.py"), "127.0.0.1"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            raise BenchError(f"tcp_target did not print its port (got {line!r})")
        yield int(line), proc.pid
    finally:
        children.stop(proc)


# --------------------------------------------------------------------------- clients ----


def run_probe_load(
    children: Children,
    args: argparse.Namespace,
    exporter: Exporter,
    target: str,
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    max_requests: int,
    target_pid: int | None,
    direct: str | None,
    kind: str = "tcp",
) -> dict[str, Any]:
    """One level of probe_load.py against one exporter; returns its JSON line.

    `direct`: probe_load's ground-truth sampler (tcp:HOST:PORT or icmp:HOST), or None.
    """
    argv = [
        str(args.client_python),
        str(args.probe_load),
        "--url-template",
        exporter.probe_url(target, kind),
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
        "--warmup",
        str(warmup),
        "--repeat",
        "1",
        "--pause",
        "0",
        "--max-requests",
        str(max_requests),
        "--timeout",
        "10",
        "--exporter-pid",
        str(exporter.pid),
        "--label",
        exporter.name,
    ]
    if target_pid is not None:
        argv += ["--watch-pid", f"target={target_pid}"]
    for metric in exporter.modules[kind].metrics:
        argv += ["--metric", metric]
    if direct:
        argv += ["--direct", direct, "--direct-rate", str(args.direct_rate)]
    err_path = exporter.workdir / "probe_load.err"
    with err_path.open("w") as err:
        proc = children.start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        try:
            out, _ = proc.communicate(timeout=warmup + duration + 60)
        finally:
            children.stop(proc)
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise BenchError(
            f"probe_load.py failed (exit {proc.returncode}): {err_path.read_text()[-1500:]}"
        )
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
    target: str,
    connections: int,
    duration: float,
) -> dict[str, Any]:
    """One wrk run; exporter CPU and peak RSS are read from /proc around it."""
    argv = [
        args.wrk_bin,
        f"-t{args.wrk_threads}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(BENCH / "wrk_success.lua"),
        "-H",
        "Accept-Encoding: identity",
        exporter.probe_url(target),
    ]
    # The whole process group counts, so a multi-worker (SO_REUSEPORT) exporter is measured
    # in full; for a single process this is the same as its own /proc figures.
    pids = group_pids(exporter.pid)
    hwm_reset = all([reset_hwm(pid) for pid in pids])
    cpu0, mach0 = group_cpu_s(exporter.pid), machine_cpu()
    client0, t0 = children_cpu_s(), time.perf_counter()
    proc = children.start(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = proc.communicate(timeout=duration + 30)
    finally:
        children.stop(proc)
    wall = time.perf_counter() - t0
    cpu = group_cpu_s(exporter.pid) - cpu0
    hwm_kb = sum(proc_status(pid).get("VmHWM", 0) for pid in pids)
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
        client_cpu_cores=round((children_cpu_s() - client0) / wall, 3),
        machine_cpu_busy_share=busy_share(mach0, machine_cpu()),
    )
    return result


# --------------------------------------------------------------------------- workloads --


@dataclass
class Context:
    args: argparse.Namespace
    children: Children
    exporters: list[Exporter]
    target: str
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
                user0, sys0 = proc_user_sys_s(exporter.pid)
                res = run_probe_load(
                    ctx.children,
                    args,
                    exporter,
                    ctx.target,
                    concurrency=concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                    max_requests=args.max_requests,
                    target_pid=ctx.target_pid,
                    direct=f"tcp:{ctx.target}",
                )
                res["accuracy"] = accuracy(res, exporter.modules["tcp"].rtt_metric)
                # user vs kernel split of the exporter's CPU over the whole client run
                user1, sys1 = proc_user_sys_s(exporter.pid)
                res["exporter_kernel_share"] = round(
                    (sys1 - sys0) / max(1e-9, user1 - user0 + sys1 - sys0), 3
                )
                # probe_load's own "exporter" block (pid, CPU, RSS) becomes "exporter_proc"
                res["exporter_proc"] = res.pop("exporter", None)
                if len(group_pids(exporter.pid)) > 1 and res["exporter_proc"]:
                    # probe_load reads one pid; a multi-worker exporter is measured by wrk
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
                run_wrk(ctx.children, args, exporter, ctx.target, connections, 1.0)  # warm-up
                res = run_wrk(ctx.children, args, exporter, ctx.target, connections, args.duration)
                ctx.record({**res, "kind": "wrk", "repeat": repeat})
                log(f"      {res.get('requests_per_s')}/s ok={res.get('success_share')}")
                time.sleep(args.pause)
            run += 1


def snapshot(pid: int) -> dict[str, Any]:
    status = proc_status(pid)
    return {
        "rss_mb": round(status["VmRSS"] / 1024, 2),
        "fds": proc_fds(pid),
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
        run_probe_load(
            ctx.children,
            args,
            exporter,
            ctx.target,
            duration=args.soak_max_seconds,
            max_requests=args.soak_warmup,
            **common,
        )
        time.sleep(1.0)  # let the client's keep-alive connections close
        before = snapshot(exporter.pid)
        res = run_probe_load(
            ctx.children,
            args,
            exporter,
            ctx.target,
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


def http_get(port: int, path: str, timeout: float = 10.0) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().read().decode(errors="replace")
    finally:
        conn.close()


def sonde_icmp_counters(exporter: Exporter) -> dict[str, Any]:
    """sonde's /metrics: the ICMP socket mode and the shared socket's drop counters (ip4)."""
    text = http_get(exporter.port, "/metrics")
    out: dict[str, Any] = {"drops": 0.0, "unmatched": 0.0}
    if m := re.search(r'^sonde_icmp_socket_mode\{ip_protocol="ip4",mode="(\w+)"\} 1', text, re.M):
        out["mode"] = m.group(1)
    for key, name in (("drops", "receive_drops"), ("unmatched", "unmatched_replies")):
        if m := re.search(rf'^sonde_icmp_{name}_total\{{ip_protocol="ip4"\}} (\S+)', text, re.M):
            out[key] = float(m.group(1))
    return out


def icmp_socket_mode(exporter: Exporter) -> str:
    """The ICMP socket type an exporter uses here: raw or datagram (the latter as sonde
    spells it; blackbox says it tried an unprivileged socket and fell back)."""
    if exporter.name == "blackbox":
        module = exporter.modules["icmp"].name
        body = http_get(exporter.port, f"/probe?module={module}&target={ICMP_TARGET}&debug=true")
        if "probe_success 1" not in body:
            raise BenchError(f"blackbox cannot ping {ICMP_TARGET}:\n{body[-1500:]}")
        return "raw" if "will attempt privileged" in body else "datagram"
    return str(sonde_icmp_counters(exporter).get("mode", "unknown"))


def bench_icmp(ctx: Context) -> None:
    args = ctx.args
    for mode in args.icmp_modes:
        if mode == "dgram" and args.netns_inner is None:
            icmp_in_netns(ctx)
        else:
            icmp_levels(ctx, mode)


def icmp_levels(ctx: Context, mode: str) -> None:
    """ICMP at each --icmp-concurrency level, in this network namespace."""
    args = ctx.args
    expected = "raw" if mode == "raw" else "datagram"
    for exporter in ctx.exporters:
        actual = icmp_socket_mode(exporter)
        if actual != expected:
            raise BenchError(
                f"{exporter.name} uses {actual} ICMP sockets, not {expected}: {mode} mode "
                f"needs {'root and a ping_group_range without group 0' if mode == 'raw' else 'the namespace set up by this script'}"
            )
    run = 0
    for repeat in range(1, args.repeat + 1):
        for concurrency in args.icmp_concurrency:
            for exporter in interleaved(ctx.exporters, run):
                log(f"[icmp {mode}] {exporter.name} c={concurrency} repeat={repeat} ...")
                is_sonde = exporter.name != "blackbox"
                counters0 = sonde_icmp_counters(exporter) if is_sonde else None
                res = run_probe_load(
                    ctx.children,
                    args,
                    exporter,
                    ICMP_TARGET,
                    concurrency=concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                    max_requests=args.max_requests,
                    target_pid=None,
                    direct=f"icmp:{ICMP_TARGET}",
                    kind="icmp",
                )
                res["accuracy"] = accuracy(res, exporter.modules["icmp"].rtt_metric)
                res["exporter_proc"] = res.pop("exporter", None)
                if counters0 is not None:
                    counters1 = sonde_icmp_counters(exporter)
                    res["sonde_icmp"] = {
                        "mode": counters1.get("mode"),
                        "receive_drops": counters1["drops"] - counters0["drops"],
                        "unmatched_replies": counters1["unmatched"] - counters0["unmatched"],
                    }
                ctx.record(
                    {
                        **res,
                        "kind": "icmp",
                        "mode": mode,
                        "exporter": exporter.name,
                        "repeat": repeat,
                    }
                )
                log(f"      {res['probes_per_s']}/s ok={res['success_share']}")
                time.sleep(args.pause)
            run += 1


def read_ping_group_range() -> str:
    return " ".join(PING_GROUP_RANGE.read_text().split())


def icmp_in_netns(ctx: Context) -> None:
    """Datagram mode: run this script again inside a new network namespace (`unshare -n`),
    where it brings lo up and sets ping_group_range for that namespace only, and runs both
    exporters, the client and the direct sampler there. The host's sysctl is never touched."""
    args = ctx.args
    out = ctx.workdir / "netns-icmp.jsonl"
    argv = [
        str(Path(__file__).resolve()),
        "icmp",
        "--icmp-modes",
        "dgram",
        "--out",
        str(out),
        *passthrough_args(args),
    ]
    levels = len(args.icmp_concurrency) * args.repeat * len(ctx.exporters)
    budget = levels * (args.warmup + args.duration + args.pause + 20) + 120
    code = run_in_new_netns(ctx.children, argv, budget, "--netns-inner", "[icmp dgram]")
    if code != 0 or not out.exists():
        raise BenchError(f"the datagram ICMP run in a namespace failed (exit {code})")
    for line in out.read_text().splitlines():
        row = json.loads(line)
        if row.get("kind") == "icmp":
            ctx.record(row)


def run_in_new_netns(
    children: Children, argv: list[str], budget: float, inner_flag: str, tag: str
) -> int:
    """Run a Python script (argv) under `unshare -n`, in a new network namespace; its exit code.

    The script gets `inner_flag HOST_NS` and calls setup_netns with it. Also used by
    bench/levers/icmplib_multiping.py.
    """
    host_range = read_ping_group_range()
    command = [
        "unshare",
        "-n",
        "--",
        sys.executable,
        *argv,
        inner_flag,
        os.readlink("/proc/self/ns/net"),
    ]
    log(f"{tag} in a new network namespace: {shlex.join(command)}")
    proc = children.start(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        code = proc.wait(budget)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{tag} the run in a namespace took over {budget:.0f} s") from None
    finally:
        children.stop(proc)
    if read_ping_group_range() != host_range:  # cannot happen: the write is per namespace
        raise BenchError(f"the host's ping_group_range changed: {host_range!r} -> ?")
    return code


DATAGRAM_FOR_ALL = "0 2147483647"
"""A ping_group_range that lets every group open datagram ICMP sockets."""


def setup_netns(host_ns: str, group_range: str = DATAGRAM_FOR_ALL) -> None:
    """Inside the namespace `unshare -n` made: lo up, and its own ping_group_range."""
    if os.readlink("/proc/self/ns/net") == host_ns:
        raise BenchError("--netns-inner outside a new network namespace: refusing to touch sysctl")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    PING_GROUP_RANGE.write_text(group_range + "\n")
    log(f"[netns] lo up, ping_group_range {read_ping_group_range()!r} in this namespace only")


def passthrough_args(args: argparse.Namespace) -> list[str]:
    """The options the namespace run shares with this one."""
    out = [
        "--icmp-concurrency",
        ",".join(map(str, args.icmp_concurrency)),
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
        "--pause",
        str(args.pause),
        "--repeat",
        str(args.repeat),
        "--max-requests",
        str(args.max_requests),
        "--direct-rate",
        str(args.direct_rate),
        "--exporters",
        ",".join(args.exporters),
        "--sonde-python",
        str(args.sonde_python),
        "--client-python",
        str(args.client_python),
        "--probe-load",
        str(args.probe_load),
        "--blackbox-bin",
        args.blackbox_bin,
        "--label",
        args.label,
    ]
    if args.sonde_launcher:
        out += ["--sonde-launcher", args.sonde_launcher]
    for flag in args.sonde_arg:
        out.append(f"--sonde-arg={flag}")
    for v in args.variant:
        out += ["--variant", v.text]
    return out


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


WORKLOADS: dict[str, Callable[[Context], None]] = {
    "tcp": bench_tcp,
    "wrk": bench_wrk,
    "icmp": bench_icmp,
    "soak": bench_soak,
    "startup": bench_startup,
}


# --------------------------------------------------------------------------- report -----


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 4) if present else None


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def md_table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers, *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


Runs = dict[str, list[dict[str, Any]]]
"""Rows of one workload level, by exporter name."""


def cost_view(row: dict[str, Any]) -> dict[str, Any]:
    """The figures the cost table shows, from a probe_load (tcp, icmp) row or a wrk row."""
    if row["kind"] in ("tcp", "icmp"):
        proc = row.get("exporter_proc") or {}
        return {
            "rate": row.get("probes_per_s"),
            "cpu": proc.get("cpu_s_per_1000_probes"),
            "rss": proc.get("peak_rss_mb_hwm"),
            "ok": row.get("success_share"),
            "client": row.get("client_cpu_cores"),
            "busy": row.get("machine_cpu_busy_share"),
        }
    return {
        "rate": row.get("requests_per_s"),
        "cpu": row.get("cpu_s_per_1000_probes"),
        "rss": row.get("peak_rss_mb_hwm"),
        "ok": row.get("success_share"),
        "client": row.get("client_cpu_cores"),
        "busy": row.get("machine_cpu_busy_share"),
    }


# (label, row kind, ICMP mode, level key): the sections of the cost and variant tables.
SECTIONS = (
    ("python", "tcp", None, "concurrency"),
    ("wrk", "wrk", None, "connections"),
    ("raw", "icmp", "raw", "concurrency"),
    ("dgram", "icmp", "dgram", "concurrency"),
)


def group(
    rows: list[dict[str, Any]], kind: str, level_key: str, mode: str | None = None
) -> dict[int, Runs]:
    grouped: dict[int, Runs] = {}
    for row in rows:
        if row.get("kind") == kind and row.get("mode") == mode:
            grouped.setdefault(row[level_key], {}).setdefault(row["exporter"], []).append(row)
    return grouped


def median_of(runs: Runs, name: str, section: str | None, key: str) -> float | None:
    """Median over repeats of row[key] (or row[section][key]) for one exporter."""
    values = []
    for row in runs.get(name, []):
        source = row if section is None else (row.get(section) or {})
        values.append(source.get(key))
    return _median(values)


def cost_rows(
    rows: list[dict[str, Any]], summary: list[dict[str, Any]], kinds: tuple[str, ...]
) -> list[list[object]]:
    table: list[list[object]] = []
    for label, kind, mode, level_key in SECTIONS:
        if kind not in kinds:
            continue
        for level, runs in sorted(group(rows, kind, level_key, mode).items()):
            views: Runs = {n: [cost_view(r) for r in rs] for n, rs in runs.items()}
            s = {k: median_of(views, "sonde", None, k) for k in ("rate", "cpu", "rss", "ok")}
            b = {k: median_of(views, "blackbox", None, k) for k in ("rate", "cpu", "rss", "ok")}
            both = [v for vs in views.values() for v in vs]
            client_cores = _median([v["client"] for v in both])
            busy = _median([v["busy"] for v in both])
            table.append(
                [
                    label,
                    level,
                    s["rate"],
                    b["rate"],
                    _ratio(s["rate"], b["rate"]),
                    s["cpu"],
                    b["cpu"],
                    _ratio(s["cpu"], b["cpu"]),
                    s["rss"],
                    b["rss"],
                    _ratio(s["rss"], b["rss"]),
                    f"{_share(s['ok'])} / {_share(b['ok'])}",
                    client_cores,
                    busy,
                ]
            )
            summary.append(
                {
                    "kind": "summary",
                    "workload": f"icmp-{mode}" if kind == "icmp" else f"tcp-{label}",
                    "concurrency": level,
                    "sonde": s,
                    "blackbox": b,
                    "client_cpu_cores": client_cores,
                    "machine_cpu_busy_share": busy,
                }
            )
    return table


COST_HEADERS = [
    "sonde probes/s",
    "bbx probes/s",
    "ratio",
    "sonde CPU s/1k",
    "bbx CPU s/1k",
    "ratio",
    "sonde peak RSS MB",
    "bbx peak RSS MB",
    "ratio",
    "success sonde / bbx",
    "client cores",
    "box busy",
]


def cost_table(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> str | None:
    table = cost_rows(rows, summary, ("tcp", "wrk"))
    if not table:
        return None
    return "TCP connect: cost (medians over repeats; ratio = sonde / blackbox)\n\n" + md_table(
        ["client", "c", *COST_HEADERS], table
    )


def icmp_cost_table(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> str | None:
    table = cost_rows(rows, summary, ("icmp",))
    if not table:
        return None
    return (
        "ICMP echo, count=1: cost (python client; raw = raw sockets on the host, dgram ="
        " datagram sockets in a network namespace; medians over repeats; ratio = sonde /"
        " blackbox)\n\n"
    ) + md_table(["mode", "c", *COST_HEADERS], table)


def accuracy_table(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> str | None:
    keys = ("reported_p50_ms", "reported_p99_ms", "direct_p99_ms", "error_p99_ms")
    table = []
    for level, runs in sorted(group(rows, "tcp", "concurrency").items()):
        row: list[object] = [level]
        entry: dict[str, Any] = {
            "kind": "summary",
            "workload": "tcp-accuracy",
            "concurrency": level,
        }
        for name in ("sonde", "blackbox"):
            figures = {k: median_of(runs, name, "accuracy", k) for k in keys}
            entry[name] = figures
            row += list(figures.values())
        table.append(row)
        summary.append(entry)
    if not table:
        return None
    return (
        "TCP accuracy, ms: p99 of the reported figure against the p99 of a direct blocking"
        " connect() timed at the same moment (sonde: probe_tcp_rtt_seconds; blackbox:"
        " probe_duration_seconds; error = reported p99 - direct p99)\n\n"
    ) + md_table(
        [
            "c",
            "sonde rtt p50",
            "sonde rtt p99",
            "direct p99",
            "sonde error",
            "bbx duration p50",
            "bbx duration p99",
            "direct p99",
            "bbx error",
        ],
        table,
    )


def icmp_accuracy_table(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> str | None:
    keys = ("reported_p50_ms", "reported_p99_ms", "direct_p99_ms", "error_p99_ms")
    table = []
    for mode in ("raw", "dgram"):
        for level, runs in sorted(group(rows, "icmp", "concurrency", mode).items()):
            row: list[object] = [mode, level]
            entry: dict[str, Any] = {
                "kind": "summary",
                "workload": f"icmp-{mode}-accuracy",
                "concurrency": level,
            }
            for name in ("sonde", "blackbox"):
                figures = {k: median_of(runs, name, "accuracy", k) for k in keys}
                entry[name] = figures
                row += list(figures.values())
            drops = [
                (r.get("sonde_icmp") or {}).get("receive_drops") for r in runs.get("sonde", [])
            ]
            entry["sonde_receive_drops"] = sum(d for d in drops if d is not None)
            row.append(entry["sonde_receive_drops"])
            table.append(row)
            summary.append(entry)
    if not table:
        return None
    return (
        "ICMP accuracy, ms: p99 of the reported echo RTT (both: probe_icmp_duration_seconds"
        '{phase="rtt"}) against the p99 of a direct echo timed at the same moment by a'
        " separate process; error = reported p99 - direct p99; drops = replies sonde's shared"
        " socket lost to a full receive buffer (sum over repeats)\n\n"
    ) + md_table(
        [
            "mode",
            "c",
            "sonde rtt p50",
            "sonde rtt p99",
            "direct p99",
            "sonde error",
            "bbx rtt p50",
            "bbx rtt p99",
            "direct p99",
            "bbx error",
            "sonde drops",
        ],
        table,
    )


def soak_table(rows: list[dict[str, Any]]) -> str | None:
    soak = [r for r in rows if r.get("kind") == "soak"]
    if not soak:
        return None
    return "RSS / fd soak (after a warm-up; growth = after - before)\n\n" + md_table(
        [
            "exporter",
            "c",
            "probes",
            "probes/s",
            "success",
            "RSS before MB",
            "RSS after MB",
            "growth MB",
            "fds before",
            "fds after",
            "peak RSS MB",
        ],
        [
            [
                r["exporter"],
                r["concurrency"],
                r["probes"],
                r["probes_per_s"],
                _share(r["success_share"]),
                r["before"]["rss_mb"],
                r["after"]["rss_mb"],
                r["rss_growth_mb"],
                r["before"]["fds"],
                r["after"]["fds"],
                r["peak_rss_mb_hwm"],
            ]
            for r in soak
        ],
    )


def startup_table(rows: list[dict[str, Any]]) -> str | None:
    startup = [r for r in rows if r.get("kind") == "startup"]
    if not startup:
        return None
    return "Start-up: exec to /-/ready answering 200, ms\n\n" + md_table(
        ["exporter", "runs", "min", "median", "max"],
        [[r["exporter"], r["runs"], r["min_ms"], r["median_ms"], r["max_ms"]] for r in startup],
    )


def variants_table(rows: list[dict[str, Any]], summary: list[dict[str, Any]]) -> str | None:
    """Lever experiments (--variant): each variant against plain sonde, same run."""
    table = []
    for client, kind, mode, level_key in SECTIONS:
        for level, runs in sorted(group(rows, kind, level_key, mode).items()):
            views: Runs = {n: [cost_view(r) for r in rs] for n, rs in runs.items()}
            base = {k: median_of(views, "sonde", None, k) for k in ("rate", "cpu", "rss", "ok")}
            for name in views:
                if name in ("sonde", "blackbox"):
                    continue
                v = {k: median_of(views, name, None, k) for k in ("rate", "cpu", "rss", "ok")}
                table.append(
                    [
                        f"icmp {client}" if kind == "icmp" else client,
                        level,
                        name,
                        v["rate"],
                        _ratio(v["rate"], base["rate"]),
                        v["cpu"],
                        _ratio(v["cpu"], base["cpu"]),
                        v["rss"],
                        _share(v["ok"]),
                    ]
                )
                summary.append(
                    {
                        "kind": "summary",
                        "workload": f"variant-{'icmp-' if kind == 'icmp' else ''}{client}",
                        "concurrency": level,
                        "variant": name,
                        "figures": v,
                        "sonde": base,
                    }
                )
    if not table:
        return None
    return "Lever experiments: each variant against plain sonde in the same run\n\n" + md_table(
        [
            "client",
            "c",
            "variant",
            "probes/s",
            "vs sonde",
            "CPU s/1k",
            "vs sonde",
            "peak RSS MB",
            "success",
        ],
        table,
    )


def report(rows: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Markdown tables (medians over repeats) and the summary rows for the JSON file."""
    summary: list[dict[str, Any]] = []
    parts = [
        cost_table(rows, summary),
        accuracy_table(rows, summary),
        icmp_cost_table(rows, summary),
        icmp_accuracy_table(rows, summary),
        variants_table(rows, summary),
        soak_table(rows),
        startup_table(rows),
    ]
    return "\n\n".join(p for p in parts if p) + "\n", summary


# --------------------------------------------------------------------------- setup ------


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
        "command": shlex.join([sys.executable, *sys.argv]),
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


def find_probe_load(given: str | None) -> Path:
    candidates = [given, os.environ.get("SONDE_BENCH_PROBE_LOAD")]
    candidates += [str(d / "shared" / "bench" / "probe_load.py") for d in REPO.parents[:2]]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate).resolve()
    raise BenchError(
        "probe_load.py not found: pass --probe-load PATH or set SONDE_BENCH_PROBE_LOAD "
        "(it lives in the shared folder beside the repository, shared/bench/probe_load.py)"
    )


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
        raise BenchError(f"{args.client_python} cannot import aiohttp (needed by probe_load.py)")
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


def variant(text: str) -> Variant:
    """NAME=SPEC; SPEC is a launcher script, git:REV (src/ at that revision), or flags, e.g.
    `before=git:HEAD~1`, `asyncio=--event-loop asyncio`, `old_asyncio=git:main --event-loop asyncio`."""
    name, sep, spec = text.partition("=")
    words = shlex.split(spec)
    if not sep or not name or not words or name in ("sonde", "blackbox"):
        raise argparse.ArgumentTypeError(
            f"expected NAME=SCRIPT, NAME=git:REV or NAME=FLAGS (NAME not sonde/blackbox): {text!r}"
        )
    launcher = rev = None
    if not words[0].startswith("-"):
        source = words.pop(0)
        if source.startswith("git:"):
            rev = source[4:]
            if subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", "--verify", "-q", rev + "^{commit}"],
                capture_output=True,
                check=False,
            ).returncode:
                raise argparse.ArgumentTypeError(f"no such git revision: {rev}")
        elif Path(source).is_file():
            launcher = source
        else:
            raise argparse.ArgumentTypeError(f"no such launcher script: {source}")
    return Variant(name, launcher, rev, tuple(words), text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
    p.add_argument("--max-requests", type=int, default=200_000, help="cap per level (probe_load)")
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
        type=variant,
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
        help="interpreter for probe_load.py (default: --sonde-python)",
    )
    p.add_argument("--probe-load", default=None, help="path of probe_load.py")
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
    # Also SIGINT: a shell may start a background job with SIGINT ignored, and Ctrl-C must
    # still stop everything. The children run in their own sessions, so cleanup is ours.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    children = Children()
    workdir = Path(tempfile.mkdtemp(prefix="sonde-bench-"))
    try:
        check_tools(args, workloads)
        if args.netns_inner is not None:
            setup_netns(args.netns_inner)
        args.probe_load = find_probe_load(args.probe_load)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out_path = (
            args.out or BENCH / "results" / f"{stamp}-{args.workload.replace(',', '-')}.jsonl"
        )
        out_path.parent.mkdir(parents=True, exist_ok=True)
        meta = machine_info(args)
        exporters = make_exporters(args, workdir)
        with (
            out_path.open("w") as sink,
            tcp_target(children, str(args.client_python)) as (port, tpid),
        ):
            ctx = Context(args, children, exporters, f"127.0.0.1:{port}", tpid, sink, workdir)
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


if __name__ == "__main__":
    sys.exit(main())
