"""Running the exporter inside a network namespace of its own (icmp_netns_runner.py): what
the namespace tests share (ICMP, traceroute, IP filter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import parse_metrics

RUNNER = Path(__file__).with_name("icmp_netns_runner.py")
NO_DATAGRAM = "1 0"  # Debian's default: nobody may open datagram ICMP sockets
ANY_GROUP = "0 2147483647"
MODES = {
    # mode: (ping_group_range, user the exporter runs as)
    "raw": (NO_DATAGRAM, "root"),
    "datagram": (ANY_GROUP, "nobody"),
}


def run_in_netns(spec: dict[str, Any]) -> dict[str, Any]:
    """Run the exporter and the spec's /probe requests in a new network namespace."""
    if os.geteuid() != 0:
        pytest.fail("the namespace tests need root (network namespaces, TUN, raw sockets)")
    proc = subprocess.run(
        ["unshare", "--net", "--", sys.executable, str(RUNNER)],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        pytest.fail(f"namespace runner failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def debug_metrics(body: str) -> dict[str, float]:
    """The metrics section of a ?debug=true answer."""
    section = body.split("Metrics that would have been returned:\n")[1]
    return parse_metrics(section.split("\nModule configuration:")[0])
