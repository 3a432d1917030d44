"""The TCP targets: listeners on distinct loopback addresses that accept and close at once.

Real users probe many hosts, not one: `--count N` binds one listener on each of N consecutive
addresses from `--first` (127.0.0.1, 127.0.0.2, ...; all of 127.0.0.0/8 is local on Linux),
each on an ephemeral port. One process serves them all through one epoll, so its CPU is not
charged to an exporter. It prints the targets ("host:port", space separated) on one line.

    python -m bench.compare.target --count 100
"""

from __future__ import annotations

import argparse
import contextlib
import selectors
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

from . import REPO
from .children import BenchError, Children
from .loopback import join_host_port, loopback_address

MAX_TARGETS = 10_000


def addresses(first: str, count: int) -> list[str]:
    """`count` consecutive addresses from `first`; ValueError if any is not loopback."""
    start = loopback_address(first)
    return [str(loopback_address(str(start + i))) for i in range(count)]


def serve(hosts: list[str]) -> None:
    """Listen on every host, print the targets, then accept and close forever."""
    selector = selectors.DefaultSelector()
    targets = []
    for host in hosts:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.bind((host, 0))
        listener.listen(4096)  # capped by net.core.somaxconn
        listener.setblocking(False)
        selector.register(listener, selectors.EVENT_READ, listener)
        targets.append(join_host_port(host, listener.getsockname()[1]))
    print(" ".join(targets), flush=True)
    while True:
        for key, _ in selector.select():
            ready: socket.socket = key.data
            while True:  # drain the backlog: one wake-up for a burst of connections
                try:
                    conn, _ = ready.accept()
                except BlockingIOError:
                    break
                conn.close()


@contextlib.contextmanager
def tcp_targets(children: Children, python: str, count: int) -> Iterator[tuple[list[str], int]]:
    """Run the target server in its own process; yield (its targets, its pid)."""
    proc = children.start(
        [python, "-m", "bench.compare.target", "--count", str(count)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        targets = proc.stdout.readline().split()
        if len(targets) != count:
            raise BenchError(f"the target server did not print {count} targets: {targets[:3]}")
        yield targets, proc.pid
    finally:
        children.stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--first", default="127.0.0.1", help="first loopback address")
    parser.add_argument("--count", type=int, default=1, help=f"addresses (1..{MAX_TARGETS})")
    args = parser.parse_args()
    if not 1 <= args.count <= MAX_TARGETS:
        parser.error(f"--count must be between 1 and {MAX_TARGETS}")
    try:
        hosts = addresses(args.first, args.count)
    except ValueError as exc:
        parser.error(str(exc))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with contextlib.suppress(KeyboardInterrupt):
        serve(hosts)


if __name__ == "__main__":
    main()
