"""One scheduled check: the same prober code as /probe, its outcome as a stored result."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from ..icmp.traceroute import Traceroute
from ..ipfilter import TargetForbidden
from ..probe_metrics import ProbeMetrics
from ..prober_base import ProbeContext, ProbeLog, Reason
from ..probers import get_prober
from ..probing import Outcome, Traceroutes, execute, refused
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


def traceroute_details(trace: Traceroute) -> dict[str, Any]:
    """A traceroute as a result's details keep it (the status page draws it): one entry
    per hop, None for a hop that did not answer."""
    hops = [
        None if hop is None else {"ttl": ttl, "address": hop.address, "rtt": hop.rtt}
        for ttl, hop in enumerate(trace.hops, 1)
    ]
    return {"target": trace.target, "reached": trace.reached, "hops": hops}


def status_of(reason: Reason | None) -> CheckStatus:
    if reason is None:
        return "up"
    return "timeout" if reason in TIMEOUT_REASONS else "down"


async def run_check(plan: CheckPlan, traceroutes: Traceroutes) -> CheckRun:
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
    prober = get_prober(plan.module.prober)
    try:
        outcome = await execute(
            prober,
            plan.parsed,
            plan.module,
            ctx,
            plan.timeout,
            observe=True,
            traceroutes=traceroutes,
        )
    except TargetForbidden as refusal:  # DNS now answers an address the filter denies
        outcome = refused(ctx, refusal, plan.timeout)
    return CheckRun(result_of(record.id, checked_at, outcome), outcome.metrics)


def result_of(monitor_id: str, checked_at: float, outcome: Outcome) -> ResultRecord:
    """The stored result of a check's outcome."""
    observed = outcome.observed
    response_time = None
    if outcome.reason is None:
        response_time = observed.get("response_time", outcome.duration)
    details: dict[str, Any] = {k: v for k, v in observed.items() if k != "response_time"}
    if outcome.traceroute is not None:
        details["traceroute"] = traceroute_details(outcome.traceroute)
    return ResultRecord(
        monitor_id=monitor_id,
        checked_at=checked_at,
        status=status_of(outcome.reason),
        response_time=response_time,
        reason=None if outcome.reason is None else outcome.reason.value,
        error=outcome.message or None,
        attempts=outcome.attempts,
        degraded=outcome.degraded,
        details=details,
    )
