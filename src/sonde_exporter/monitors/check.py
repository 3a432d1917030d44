"""One scheduled check: the same prober code as /probe, its outcome as a stored result."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ..icmp.traceroute_report import TRACEROUTE_HOP_RTT, TRACEROUTE_HOPS
from ..ipfilter import TargetForbidden
from ..probe_metrics import ProbeMetrics
from ..prober_base import ProbeContext, ProbeLog, Reason
from ..probers import get_prober
from ..probing import Outcome, conclude, execute
from ..storage import ResultRecord
from ..storage.records import CheckStatus
from .plan import CheckPlan

TIMEOUT_REASONS = frozenset({Reason.TIMEOUT, Reason.CONNECT_TIMEOUT})
"""Failures reported as status `timeout` rather than `down`."""


@dataclass(frozen=True, slots=True)
class CheckRun:
    """What a check leaves: the result to store, and the metrics /monitors/metrics shows."""

    result: ResultRecord
    metrics: ProbeMetrics


def _refused(refused: TargetForbidden, ctx: ProbeContext, timeout: float) -> Outcome:
    """A check the IP filter stopped before any packet: failed, with the filter's reason."""
    ctx.log.error("Probe failed", reason=Reason.TARGET_FORBIDDEN, error=refused.message)
    return conclude(ctx, Reason.TARGET_FORBIDDEN, refused.message, 0.0, timeout)


def traceroute_of(ctx: ProbeContext) -> dict[str, Any] | None:
    """The traceroute a failed check captured (traceroute_on_error), read back from its
    metrics, as the status page shows it: None when none ran."""
    hops: int | None = None
    answered: dict[int, tuple[str, float]] = {}
    for gauge, samples in ctx.metrics.families():
        if gauge is TRACEROUTE_HOPS:
            hops = int(samples[()])
        elif gauge is TRACEROUTE_HOP_RTT:
            answered = {int(ttl): (address, rtt) for (ttl, address), rtt in samples.items()}
    if hops is None:
        return None
    path = [
        None
        if ttl not in answered
        else {"ttl": ttl, "address": answered[ttl][0], "rtt": answered[ttl][1]}
        for ttl in range(1, hops + 1)
    ]
    last = path[-1] if path else None
    reached = last is not None and last["address"] == ctx.address
    return {"target": ctx.address, "reached": reached, "hops": path}


def status_of(reason: Reason | None) -> CheckStatus:
    if reason is None:
        return "up"
    return "timeout" if reason in TIMEOUT_REASONS else "down"


async def run_check(plan: CheckPlan) -> CheckRun:
    """Run the monitor's probe under its timeout, with its module's policies.

    Always through the policy engine, even with no policy set: it records what the prober
    observed (response time, RTTs, delivery time), which a result keeps.
    """
    record = plan.record
    ctx = ProbeContext(
        metrics=ProbeMetrics(),
        log=ProbeLog(bound=(("monitor", record.name), ("target", record.target))),
        deadline=asyncio.get_running_loop().time() + plan.timeout,
    )
    checked_at = time.time()
    try:
        outcome = await execute(
            get_prober(plan.module.prober),
            plan.parsed,
            plan.module,
            ctx,
            plan.timeout,
            with_policies=True,
        )
    except TargetForbidden as refused:  # DNS now answers an address the filter denies
        outcome = _refused(refused, ctx, plan.timeout)
    observed = ctx.observed or {}
    response_time = None
    if outcome.reason is None:
        response_time = observed.get("response_time", outcome.duration)
    details: dict[str, Any] = {k: v for k, v in observed.items() if k != "response_time"}
    trace = traceroute_of(ctx) if plan.module.traceroute_on_error else None
    if trace is not None:
        details["traceroute"] = trace
    result = ResultRecord(
        monitor_id=record.id,
        checked_at=checked_at,
        status=status_of(outcome.reason),
        response_time=response_time,
        reason=None if outcome.reason is None else outcome.reason.value,
        error=outcome.message or None,
        attempts=ctx.attempts,
        degraded=ctx.degraded,
        details=details,
    )
    return CheckRun(result, ctx.metrics)
