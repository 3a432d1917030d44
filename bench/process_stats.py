"""What the monitor benches read off an exporter process: its CPU and RSS from /proc, a free
loopback port, and quantiles of the scheduling-lag histogram between two scrapes."""

from __future__ import annotations

import math
import os
import re
import socket
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads: the SQLite writer is charged)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def parse_metrics(text: str) -> dict[str, float]:
    """Sample name with labels -> value, of a text exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def lag_quantile(before: dict[str, float], after: dict[str, float], q: float) -> float:
    """The q-quantile of the lag observations between two scrapes, interpolated linearly in
    its histogram bucket (as Prometheus' histogram_quantile)."""
    name = "sonde_monitor_scheduling_lag_seconds_bucket"
    buckets = sorted(
        (math.inf if m.group(1) == "+Inf" else float(m.group(1)), after[k] - before.get(k, 0))
        for k in after
        if (m := re.fullmatch(name + r'\{le="([^"]+)"\}', k))
    )
    total = buckets[-1][1]
    rank, lower, below = q * total, 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == math.inf:
                return lower
            return lower + (upper - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = upper, count
    return lower
