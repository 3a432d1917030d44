"""Runs in a new network namespace (`unshare -n`): the datagram ICMP mode, where
ping_group_range is written for that namespace only, never for the host."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

from . import REPO
from .children import BenchError, Children, log

PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")


def read_ping_group_range() -> str:
    return " ".join(PING_GROUP_RANGE.read_text().split())


def run_in_new_netns(
    children: Children, argv: list[str], budget: float, inner_flag: str, tag: str
) -> int:
    """Run Python (argv: a script, or -m and a module of this repository) under `unshare -n`,
    in a new network namespace, from the repository's root; its exit code.

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
    proc = children.start(command, cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
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
