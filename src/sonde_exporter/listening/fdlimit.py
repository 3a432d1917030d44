"""The file descriptor limit: raised at start, and the share of it client connections get.

Go programs (blackbox_exporter and Prometheus included) raise their soft RLIMIT_NOFILE to the
hard limit at start since Go 1.19: the soft limit of 1024 that most systems still hand out is
a relic of select(2), which asyncio's epoll loop does not use. What client connections may
hold is then capped so that probes always find a descriptor: a flood of clients waits or is
turned away, while probes never fail for want of a socket.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

RESERVE = 256
"""Descriptors kept out of the connections' reach: what the process holds at start (the
interpreter, logs, the database, the listeners), the scheduled checks (64 at once by default,
a socket or two each), name lookups and config reloads."""

PER_CONNECTION = 2
"""A client connection takes one descriptor, and a /probe it carries opens at least one more
(the probe's own socket)."""


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one, as Go does; the soft limit in effect.

    A hard limit the kernel will not take as a soft one (RLIM_INFINITY on some systems) leaves
    the soft limit as it was.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
    return hard


@dataclass(frozen=True)
class ConnectionBudget:
    limit: int
    """Client connections allowed at once, across all listeners."""
    lowered: bool
    """The limit asked for did not leave RESERVE descriptors for probes and was lowered."""


def connection_budget(requested: int, fd_limit: int) -> ConnectionBudget:
    """The connections `fd_limit` descriptors allow with RESERVE and PER_CONNECTION kept for
    probes, at most `requested` (0: as many as the descriptors allow); at least 1."""
    room = max(1, (fd_limit - RESERVE) // PER_CONNECTION)
    if requested and requested <= room:
        return ConnectionBudget(requested, lowered=False)
    return ConnectionBudget(room, lowered=bool(requested))
