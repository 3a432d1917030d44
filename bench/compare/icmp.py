"""The icmp workload: echo to the targets' loopback addresses, one echo per probe, in raw mode
on the host and in datagram mode inside a network namespace (netns.py)."""

from __future__ import annotations

import argparse
import json
import re
import time
from typing import Any

from .children import BenchError, log
from .clients import accuracy, run_load
from .exporters import Exporter, http_get, interleaved
from .loopback import target_host
from .netns import run_in_new_netns
from .workloads import Context


def icmp_targets(ctx: Context) -> list[str]:
    """The hosts of the TCP targets: distinct loopback addresses, each answering echo."""
    return [target_host(t) for t in ctx.targets]


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


def icmp_socket_mode(exporter: Exporter, host: str) -> str:
    """The ICMP socket type an exporter uses here: raw or datagram (the latter as sonde
    spells it; blackbox says it tried an unprivileged socket and fell back)."""
    if exporter.name == "blackbox":
        module = exporter.modules["icmp"].name
        body = http_get(exporter.port, f"/probe?module={module}&target={host}&debug=true")
        if "probe_success 1" not in body:
            raise BenchError(f"blackbox cannot ping {host}:\n{body[-1500:]}")
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
        actual = icmp_socket_mode(exporter, icmp_targets(ctx)[0])
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
                res = run_load(
                    ctx.children,
                    args,
                    exporter,
                    icmp_targets(ctx),
                    concurrency=concurrency,
                    duration=args.duration,
                    warmup=args.warmup,
                    max_requests=args.max_requests,
                    target_pid=None,
                    direct=f"icmp:{icmp_targets(ctx)[0]}",
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


def icmp_in_netns(ctx: Context) -> None:
    """Datagram mode: run this script again inside a new network namespace (`unshare -n`),
    where it brings lo up and sets ping_group_range for that namespace only, and runs both
    exporters, the client and the direct sampler there. The host's sysctl is never touched."""
    args = ctx.args
    out = ctx.workdir / "netns-icmp.jsonl"
    argv = [
        "-m",
        "bench.compare",
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
        "--targets",
        str(args.targets),
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
