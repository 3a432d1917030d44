"""One probe from start to verdict, as /probe and the monitor scheduler both run it."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, NamedTuple

from ..config import Module
from ..ipfilter import TargetForbidden
from ..logs import fields
from ..probe_metrics import PROBE_DURATION, PROBE_FAILURE_REASON, PROBE_SUCCESS, PROBE_TIMEOUT
from ..prober_base import ProbeContext, ProbeFailure, Prober, Reason
from .policies import run_with_policies

logger = logging.getLogger("sonde_exporter.handler")


class Outcome(NamedTuple):
    """A tuple, not a frozen dataclass: every probe makes one, and a frozen dataclass's
    __init__ costs several times a tuple's (callgrind: bench/README.md)."""

    reason: Reason | None
    """None when the probe succeeded."""
    message: str
    """What went wrong, in a few words ("connection refused"); empty on success."""
    duration: float


async def execute(
    prober: Prober[Any, Any],
    parsed: object,
    module: Module,
    ctx: ProbeContext,
    budget: float,
    *,
    with_policies: bool,
) -> Outcome:
    """Run the prober (through the policies when asked) under ctx.deadline and set the
    metrics every probe carries. Never raises for the probe's own failures or bugs."""
    reason: Reason | None = None
    message = ""
    start = time.perf_counter()
    try:
        if with_policies:
            await run_with_policies(prober, parsed, module, ctx)
        else:
            async with asyncio.timeout_at(ctx.deadline):
                await prober.probe(parsed, module.settings, ctx)
    except ProbeFailure as failure:
        reason, message = failure.reason, failure.message
        ctx.log.error("Probe failed", reason=reason, error=message)
    except TimeoutError:
        reason, message = ctx.timeout_reason, f"timed out after {budget:g}s"
        ctx.log.error("Probe failed", reason=reason, error=message)
    except TargetForbidden:
        raise  # not a probe outcome: /probe answers 403, a monitor's check records it
    except Exception as exc:  # a prober bug must not take the exporter down
        reason, message = Reason.INTERNAL, f"internal error: {type(exc).__name__}"
        logger.exception(
            "Prober raised an unexpected error",
            extra=fields(module=module.prober, target=str(parsed)),
        )
        ctx.log.error("Probe failed", reason=reason, error=message)
    return conclude(ctx, reason, message, time.perf_counter() - start, budget)


def conclude(
    ctx: ProbeContext, reason: Reason | None, message: str, duration: float, budget: float
) -> Outcome:
    """Set the metrics every probe carries, whoever decided its outcome."""
    metrics = ctx.metrics
    if reason is not None:
        metrics.set(PROBE_FAILURE_REASON, 1, reason.value)
    metrics.set(PROBE_DURATION, duration)
    metrics.set(PROBE_TIMEOUT, budget)
    metrics.set(PROBE_SUCCESS, 1 if reason is None else 0)
    return Outcome(reason, message, duration)
