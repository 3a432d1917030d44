"""Runs an exporter inside a fresh network namespace and sends it /probe requests.

Started by the tests as `unshare --net -- python icmp_netns_runner.py` (as root) with a
JSON spec on stdin. Inside the new namespace it sets that namespace's ping_group_range
(never the host's), starts the TUN responder and the reply forger when asked, optionally
drops to the unprivileged user nobody, then runs the exporter and the requests. It prints
one JSON document: the answers, /metrics, and what it saw of its own sockets.

Everything is imported before privileges are dropped: as nobody the interpreter may not be
able to read its own standard library (it can live under a private home directory).

Spec keys: ping_group_range, user ("root" or "nobody"), config (YAML text), batches (lists
of /probe query dicts; each batch runs concurrently, batches in turn), responder (TUN spec
for icmp_netns_tools.py plus "ipv4"/"ipv6"/"extra" interface addresses), forger (bool),
traceroutes (optional: "interval" of the TracerouteCache they share and "rounds", lists of
traceroute() keyword dicts with "target"; each round runs concurrently, rounds in turn, all
of it while the batches run).
"""

from __future__ import annotations

import asyncio
import concurrent.futures.thread  # noqa: F401  (aiohttp compresses in an executor)
import contextlib
import ctypes
import encodings.idna  # noqa: F401  (aiohttp's client may encode host names)
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web

from sonde_exporter.app import build_app
from sonde_exporter.config import parse_config
from sonde_exporter.exporter import Exporter
from sonde_exporter.icmp.traceroute_cache import TracerouteCache
from sonde_exporter.icmp.traceroute_report import record_traceroute
from sonde_exporter.probe_metrics import ProbeMetrics

TOOLS = Path(__file__).with_name("icmp_netns_tools.py")
NOBODY = 65534
PR_SET_DUMPABLE = 4


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def start_helper(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(TOOLS), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise SystemExit(f"{args[0]} did not start: {line!r}")
    return proc


def stop_helper(proc: subprocess.Popen[str]) -> Any:
    out, _ = proc.communicate(timeout=30)
    return json.loads(out)


def set_up_tun(spec: dict[str, Any]) -> None:
    name = spec["interface"]
    sh("ip", "link", "set", name, "up")
    sh("ip", "addr", "add", spec["ipv4"], "dev", name)
    sh("ip", "-6", "addr", "add", spec["ipv6"], "dev", name, "nodad")
    for extra in spec.get("extra", []):
        sh("ip", "addr", "add", extra, "dev", name, *(["nodad"] if ":" in extra else []))


def drop_to_nobody() -> None:
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)  # from root to another uid: every capability is gone
    # Stay able to read our own /proc/self/fd after the uid change.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)


def icmp_socket_kinds() -> dict[str, str]:
    """inode -> kind, for every ICMP socket in this network namespace."""
    kinds = {}
    for table, kind in (
        ("raw", "raw4"),
        ("raw6", "raw6"),
        ("icmp", "datagram4"),
        ("icmp6", "datagram6"),
    ):
        with open(f"/proc/net/{table}") as f:
            for line in f.readlines()[1:]:
                kinds[line.split()[9]] = kind
    return kinds


def open_fds() -> dict[int, str]:
    fds = {}
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the fd of listdir itself is gone already
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
    return fds


def own_icmp_sockets() -> list[str]:
    kinds = icmp_socket_kinds()
    return sorted(
        kinds[link[8:-1]]
        for link in open_fds().values()
        if link.startswith("socket:[") and link[8:-1] in kinds
    )


async def watch(stop: asyncio.Event, seen: dict[str, int]) -> None:
    """Sample this process's ICMP sockets while probes run: the most of each kind at once."""
    while not stop.is_set():
        counts: dict[str, int] = {}
        for kind in own_icmp_sockets():
            counts[kind] = counts.get(kind, 0) + 1
        for kind, n in counts.items():
            seen[kind] = max(seen.get(kind, 0), n)
        seen["samples"] = seen.get("samples", 0) + 1
        await asyncio.sleep(0.005)


class LinesLog:
    """The debug lines of one traceroute, as [level, message, fields]."""

    def __init__(self) -> None:
        self.lines: list[list[Any]] = []

    def debug(self, message: str, **fields: Any) -> None:
        self.lines.append(["debug", message, fields])

    def warn(self, message: str, **fields: Any) -> None:
        self.lines.append(["warn", message, fields])


async def run_traceroutes(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Each round's traceroutes at once, through one cache; what each probe would report."""
    cache = TracerouteCache(interval=spec.get("interval", 60.0))
    loop = asyncio.get_running_loop()

    async def one(params: dict[str, Any]) -> dict[str, Any]:
        options = dict(params)
        target = options.pop("target")
        deadline = loop.time() + options.pop("timeout", 5.0)
        result = await cache.get(target, deadline=deadline, **options)
        metrics, log = ProbeMetrics(), LinesLog()
        record_traceroute(result, metrics, log)
        out: dict[str, Any] = {"params": params, "metrics": metrics.render(), "log": log.lines}
        if result is not None:
            trace = result.trace
            out |= {
                "hops": [None if h is None else [h.ttl, h.address, h.rtt] for h in trace.hops],
                "reached": trace.reached,
                "error": trace.error,
                "mode": trace.mode.value,
                "duration": trace.duration,
                "reused": result.reused,
            }
        return out

    results: list[dict[str, Any]] = []
    for round_ in spec["rounds"]:
        results += await asyncio.gather(*(one(params) for params in round_))
    return results


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    before = open_fds()
    exporter = Exporter(Path("spec.yml"), parse_config(spec["config"], "spec.yml"), 0.5, 100)
    runner = aiohttp.web.AppRunner(build_app(exporter), access_log=None)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    results: list[dict[str, Any]] = []
    during: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(params: dict[str, str]) -> dict[str, Any]:
            async with session.get(f"{base}/probe", params=params) as response:
                return {"params": params, "status": response.status, "body": await response.text()}

        stop = asyncio.Event()
        watcher = asyncio.create_task(watch(stop, during))
        traces = asyncio.create_task(run_traceroutes(spec.get("traceroutes") or {"rounds": []}))
        for batch in spec["batches"]:
            results += await asyncio.gather(*(one(params) for params in batch))
        traceroutes = await traces
        stop.set()
        await watcher
        async with session.get(f"{base}/metrics") as response:
            metrics = await response.text()
        async with session.get(f"{base}/-/healthy") as response:
            healthy = response.status
    await runner.cleanup()
    after = open_fds()
    kinds = icmp_socket_kinds()
    new = sorted(
        kinds.get(link[8:-1], link) if link.startswith("socket:[") else link
        for fd, link in after.items()
        if before.get(fd) != link
    )
    return {
        "results": results,
        "traceroutes": traceroutes,
        "metrics": metrics,
        "healthy": healthy,
        "icmp_sockets_during": during,
        "icmp_sockets_after": own_icmp_sockets(),
        "new_fds_after": new,
    }


def main() -> None:
    spec = json.load(sys.stdin)
    sh("ip", "link", "set", "lo", "up")
    Path("/proc/sys/net/ipv4/ping_group_range").write_text(spec["ping_group_range"])
    helpers: dict[str, subprocess.Popen[str]] = {}
    if spec.get("responder"):
        tun = spec["responder"]
        helpers["responder"] = start_helper("responder", json.dumps(tun))
        set_up_tun(tun)
    if spec.get("forger"):
        helpers["forger"] = start_helper("forger")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    if spec["user"] == "nobody":
        drop_to_nobody()
    with open("/proc/self/status") as f:
        status = dict(line.split(":\t", 1) for line in f if ":\t" in line)
    try:
        out = asyncio.run(run(spec))
    finally:
        out_helpers = {name: stop_helper(proc) for name, proc in helpers.items()}
    out["helpers"] = out_helpers
    out["uid"] = os.getuid()
    out["cap_eff"] = status["CapEff"].strip()
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
