"""A traceroute as probe metrics and debug lines.

Why these series: one per answering hop (at most max_hops), labelled by its TTL and address,
so a path change shows as new series and a silent hop as a missing one; the hop count says
how far the path was seen. A sweep that could not run adds no series, only a debug line with
the reason, so "no permission" never looks like "nobody answered".
"""

from __future__ import annotations

from typing import Any, Protocol

from ..logs import timestamp
from ..probe_metrics import ProbeGauge, ProbeMetrics
from .traceroute_cache import TracerouteResult

TRACEROUTE_HOPS = ProbeGauge(
    "probe_traceroute_hops",
    "Hops of the traceroute up to the target, or to the last hop that answered when the "
    "target did not",
)
TRACEROUTE_HOP_RTT = ProbeGauge(
    "probe_traceroute_hop_rtt_seconds",
    "Round-trip time to each hop of the traceroute that answered, by TTL (hop) and address, "
    "in seconds",
    ("hop", "address"),
)


class DebugLog(Protocol):
    """Where the lines go (a probe's ProbeLog)."""

    def debug(self, message: str, **fields: Any) -> None: ...

    def warn(self, message: str, **fields: Any) -> None: ...


def record_traceroute(
    result: TracerouteResult | None, metrics: ProbeMetrics, log: DebugLog
) -> None:
    """Add the traceroute's metrics to a probe's, and one debug line per hop.

    `result` None: another probe's sweep of the target was still running at the deadline.
    """
    if result is None:
        log.debug("Traceroute still running for another probe of this target")
        return
    trace = result.trace
    if trace.error is not None and not trace.hops:
        log.warn("Traceroute could not run", target=trace.target, err=trace.error)
        return
    metrics.set(TRACEROUTE_HOPS, len(trace.hops))
    for hop in trace.hops:
        if hop is not None:
            metrics.set(TRACEROUTE_HOP_RTT, hop.rtt, str(hop.ttl), hop.address)
    log.debug(
        "Traceroute",
        target=trace.target,
        reached=trace.reached,
        hops=len(trace.hops),
        max_hops=trace.max_hops,
        sent=trace.sent,
        socket_mode=trace.mode.value,
        started=timestamp(trace.started),
        duration_seconds=round(trace.duration, 6),
        reused=result.reused,
    )
    for ttl, hop in enumerate(trace.hops, 1):
        if hop is None:
            log.debug("Traceroute hop", hop=ttl, address="*")
        else:
            log.debug("Traceroute hop", hop=ttl, address=hop.address, rtt_seconds=hop.rtt)
    if trace.error is not None:
        log.warn("Traceroute stopped early", target=trace.target, err=trace.error)
