"""One probe from start to verdict: the single path /probe, /probe?monitor= and the monitor
scheduler all take."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from ..config import Module
from ..icmp.traceroute import Traceroute
from ..ipfilter import TargetForbidden
from ..logs import fields
from ..probe_metrics import (
    PROBE_DURATION,
    PROBE_FAILURE_REASON,
    PROBE_SUCCESS,
    PROBE_TIMEOUT,
    ProbeMetrics,
)
from ..prober_base import ProbeContext, ProbeFailure, Prober, Reason
from .policies import PASSED, Verdict, run_with_policies
from .traceroute import Traceroutes

logger = logging.getLogger("sonde_exporter.handler")

NOTHING_OBSERVED: Mapping[str, float] = MappingProxyType({})


class Outcome(NamedTuple):
    """Everything a probe leaves. A tuple, not a frozen dataclass: every probe makes one,
    and a frozen dataclass's __init__ costs several times a tuple's (callgrind:
    bench/README.md)."""

    reason: Reason | None
    """None when the probe succeeded."""
    message: str
    """What went wrong, in a few words ("connection refused"); empty on success."""
    duration: float
    metrics: ProbeMetrics
    """The probe's metrics: the last attempt's, plus the policies' and the traceroute's."""
    observed: Mapping[str, float]
    """What the prober measured for the policies (response_time, rtt_avg, ...); empty for a
    plain probe."""
    attempts: int
    degraded: bool
    """Succeeded, slower than degraded_response_time."""
    traceroute: Traceroute | None
    """The path to the probed address, when traceroute_on_error traced the failure."""


async def execute(
    prober: Prober[Any, Any],
    parsed: object,
    module: Module,
    ctx: ProbeContext,
    budget: float,
    *,
    observe: bool,
    traceroutes: Traceroutes,
) -> Outcome:
    """Run the prober under ctx.deadline and set the metrics every probe carries. Never
    raises for the probe's own failures or a prober's bug; TargetForbidden when the
    module's IP filter refused the target before anything was sent.

    Through the policy engine when the module has policies or the caller wants what the
    prober `observe`s (a monitor: its result keeps the response time); a plain probe runs
    the prober once, directly.
    """
    start = time.perf_counter()
    try:
        if observe or module.has_policies:
            verdict = await run_with_policies(prober, parsed, module, ctx, traceroutes)
        else:
            async with asyncio.timeout_at(ctx.deadline):
                await prober.probe(parsed, module.settings, ctx)
            verdict = PASSED
    except ProbeFailure as failure:
        verdict = Verdict(failure.reason, failure.message)
    except TimeoutError:
        verdict = Verdict(ctx.timeout_reason, f"timed out after {budget:g}s")
    except TargetForbidden:
        raise  # not a probe outcome: /probe answers 403, a monitor's check records refused()
    except Exception as exc:  # a prober bug must not take the exporter down
        verdict = Verdict(Reason.INTERNAL, f"internal error: {type(exc).__name__}")
        logger.exception(
            "Prober raised an unexpected error",
            extra=fields(module=module.prober, target=str(parsed)),
        )
    return conclude(ctx, verdict, time.perf_counter() - start, budget)


_new_outcome = tuple.__new__


def refused(ctx: ProbeContext, refusal: TargetForbidden, budget: float) -> Outcome:
    """The outcome of a check the IP filter stopped before any packet (DNS now answers an
    address the filter denies): failed, with the filter's reason."""
    return conclude(ctx, Verdict(Reason.TARGET_FORBIDDEN, refusal.message), 0.0, budget)


def conclude(ctx: ProbeContext, verdict: Verdict, duration: float, budget: float) -> Outcome:
    """Log a failure, set the metrics every probe carries, and gather the outcome."""
    reason, message, attempts, degraded, traceroute = verdict  # one unpack: the hot path
    metrics = ctx.metrics
    if reason is not None:
        ctx.log.error("Probe failed", reason=reason, error=message)
        metrics.set(PROBE_FAILURE_REASON, 1, reason.value)
    metrics.set(PROBE_DURATION, duration)
    metrics.set(PROBE_TIMEOUT, budget)
    metrics.set(PROBE_SUCCESS, 1 if reason is None else 0)
    observed = ctx.observed
    # tuple.__new__ directly: the NamedTuple's own __new__ is a Python frame, on every probe
    return _new_outcome(
        Outcome,
        (
            reason,
            message,
            duration,
            metrics,
            NOTHING_OBSERVED if observed is None else observed,
            attempts,
            degraded,
            traceroute,
        ),
    )
