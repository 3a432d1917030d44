"""traceroute_on_error: after a probe failed for a network reason, the path to the address it
probed, from the exporter's per-target caches (at most one sweep per target per interval)."""

from __future__ import annotations

import logging

from ..config import Module
from ..icmp.traceroute import Traceroute
from ..icmp.traceroute_cache import TracerouteCache
from ..icmp.traceroute_report import record_traceroute
from ..logs import fields
from ..prober_base import ProbeContext, Reason

TRACED_REASONS = frozenset(
    {
        Reason.CONNECT_REFUSED,
        Reason.CONNECT_TIMEOUT,
        Reason.CONNECT_ERROR,
        Reason.TIMEOUT,
        Reason.IO_ERROR,
        Reason.PACKET_LOSS,
        Reason.SMTP_CONNECT,
    }
)
"""Failures that say something about the path to the probed address. Not dns (there is no
address), nor TLS, protocol, authentication, delivery or verdict failures (the path worked),
nor receive_connect (the mailbox server is not the address the probe chose)."""

logger = logging.getLogger("sonde_exporter.traceroute")


class Traceroutes:
    """The traceroute caches, one per configured interval, shared by every module and every
    reload: the exporter owns them and hands them to every probe (/probe and the monitors)."""

    __slots__ = ("_caches",)

    def __init__(self) -> None:
        self._caches: dict[float, TracerouteCache] = {}

    def cache(self, interval: float) -> TracerouteCache:
        cache = self._caches.get(interval)
        if cache is None:
            cache = self._caches[interval] = TracerouteCache(interval)
        return cache


async def trace_failure(
    traceroutes: Traceroutes, module: Module, reason: Reason, deadline: float, ctx: ProbeContext
) -> Traceroute | None:
    """The traceroute of a failed probe, when it applies and found hops: added to the
    probe's metrics and debug log, and returned for the probe's outcome."""
    if reason not in TRACED_REASONS:
        return None
    if ctx.address is None:
        ctx.log.debug("No traceroute: the probe chose no address", reason=reason)
        return None
    settings = module.traceroute_settings
    try:
        result = await traceroutes.cache(settings.interval).get(
            ctx.address,
            max_hops=settings.max_hops,
            deadline=deadline,
            source=getattr(module.settings, "source_ip_address", None),
            per_hop_timeout=settings.budget,
        )
    except Exception as exc:  # the sweep's own bug must not change the probe's verdict
        logger.exception("Traceroute raised an unexpected error", extra=fields(ip=ctx.address))
        ctx.log.warn("Traceroute failed", error=f"internal error: {type(exc).__name__}")
        return None
    record_traceroute(result, ctx.metrics, ctx.log)
    if result is None or (result.trace.error is not None and not result.trace.hops):
        return None  # nothing recorded: another probe's sweep is running, or none could run
    return result.trace
