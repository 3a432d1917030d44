"""Retries, response-time limits and should_fail around the prober: one verdict per probe.

Every attempt runs the prober with fresh metrics under its own deadline, a share of the
probe's: (time left - the backoff delays still to come) / attempts left, so a hung attempt
leaves time for the retries. Only the retries that can still fit count (their delays plus
MIN_ATTEMPT_SECONDS each); the last one gets all that is left. A retry starts only if, after
its backoff delay, at least MIN_ATTEMPT_SECONDS of the probe's deadline remain. The
probe's metrics are those of the last attempt, plus what the policies add; the debug log
lists every attempt.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..config import Module
from ..config.policies import MIN_ATTEMPT_SECONDS, Retries, attempt_share, attempts_fit
from ..icmp.traceroute import Traceroute
from ..probe_metrics import ProbeGauge, ProbeMetrics
from ..prober_base import ProbeContext, ProbeFailure, Prober, Reason
from .assertions import evaluate
from .traceroute import Traceroutes, trace_failure

NETWORK_ERRORS = frozenset(
    {
        Reason.DNS,
        Reason.CONNECT_REFUSED,
        Reason.CONNECT_TIMEOUT,
        Reason.CONNECT_ERROR,
        Reason.TIMEOUT,
        Reason.IO_ERROR,
        Reason.SMTP_CONNECT,
        Reason.RECEIVE_CONNECT,
    }
)
"""What `retries.on: [network_error]` retries: the target could not be reached or stopped
answering. TLS, protocol, auth and verdict failures say the same thing on every attempt."""

PROBE_ATTEMPTS = ProbeGauge("probe_attempts", "Attempts the probe made (1 + retries started)")
ATTEMPT_FAILURE_REASON = ProbeGauge(
    "probe_attempt_failure_reason",
    "Set to 1 with the reason of each failed attempt, numbered from 1",
    ("attempt", "reason"),
)
PROBE_DEGRADED = ProbeGauge(
    "probe_degraded",
    "1 when the probe succeeded with a response time over degraded_response_time, else 0",
)
PROBE_RAW_SUCCESS = ProbeGauge(
    "probe_raw_success", "Whether the probe's checks passed, before should_fail inverted them"
)
RAW_FAILURE_REASON = ProbeGauge(
    "probe_raw_failure_reason",
    "Set to 1 with the reason the checks failed, before should_fail inverted the verdict",
    ("reason",),
)


class Verdict(NamedTuple):
    """What the policies decided, with what they counted on the way."""

    reason: Reason | None
    """None: the probe succeeded."""
    message: str = ""
    attempts: int = 1
    degraded: bool = False
    traceroute: Traceroute | None = None
    """The path to the probed address, when traceroute_on_error traced the failure."""


PASSED = Verdict(None)
"""A plain probe that succeeded: one attempt, nothing more to say (shared, never built)."""


@dataclass(slots=True)
class Attempt:
    """One run of the prober and its checks."""

    number: int
    raw: Reason | None = None
    """The checks' outcome: the prober's failure, too_slow or assertion_failed; None: passed."""
    reason: Reason | None = None
    """The attempt's verdict, after should_fail."""
    message: str = ""
    response_time: float | None = None


async def run_with_policies(
    prober: Prober[Any, Any],
    target: object,
    module: Module,
    ctx: ProbeContext,
    traceroutes: Traceroutes,
) -> Verdict:
    """Run the attempts the policies allow and judge them; the probe's own failures are
    in the verdict, never raised."""
    loop = asyncio.get_running_loop()
    probe_deadline = deadline = ctx.deadline
    deadline -= module.traceroute_reserve(probe_deadline - loop.time())  # 0 without it
    retries = module.retries
    allowed = 1 + (retries.max if retries is not None else 0)
    attempts: list[Attempt] = []
    try:
        for number in range(1, allowed + 1):
            if retries is not None and number > 1:
                delay = retries.delay_before(number - 1)
                if loop.time() + delay + MIN_ATTEMPT_SECONDS > deadline:
                    ctx.log.warn(
                        "Retry not started: too little time left after its backoff",
                        attempt=number,
                        backoff_seconds=round(delay, 6),
                        left_seconds=round(deadline - loop.time(), 6),
                    )
                    break
                await asyncio.sleep(delay)
                ctx.metrics = ProbeMetrics()
            budget_end = _attempt_deadline(loop.time(), deadline, retries, number, allowed)
            attempt = await _attempt(number, prober, target, module, ctx, budget_end)
            attempts.append(attempt)
            if attempt.reason is None or not _retried(attempt.reason, retries):
                break
    finally:
        ctx.deadline = probe_deadline
    last = attempts[-1]
    degraded = _record(module, attempts, ctx)
    trace = None
    if last.reason is not None and module.traceroute_on_error:
        trace = await trace_failure(traceroutes, module, last.reason, probe_deadline, ctx)
    return Verdict(last.reason, last.message, len(attempts), degraded, trace)


def _attempt_deadline(
    now: float, deadline: float, retries: Retries | None, number: int, allowed: int
) -> float:
    """This attempt's share of the time left, keeping room for the retries that still fit."""
    if retries is None:
        return deadline
    left = deadline - now
    delays = [retries.delay_before(retry) for retry in range(number, allowed)]
    while delays and not attempts_fit(delays, left):
        delays.pop()  # this retry could not start in time anyway: give its time to the others
    if not delays:
        return deadline
    return now + attempt_share(left, delays)


def _retried(reason: Reason, retries: Retries | None) -> bool:
    return retries is not None and (retries.on_any or reason in NETWORK_ERRORS)


async def _attempt(
    number: int,
    prober: Prober[Any, Any],
    target: object,
    module: Module,
    ctx: ProbeContext,
    budget_end: float,
) -> Attempt:
    """Run the prober once under `budget_end`, then judge what it observed."""
    ctx.deadline = budget_end
    ctx.timeout_reason = Reason.TIMEOUT
    ctx.observed = {}
    ctx.response_data = bytearray() if module.reads_response_data else None
    attempt = Attempt(number)
    budget = budget_end - asyncio.get_running_loop().time()
    started = time.perf_counter()
    try:
        async with asyncio.timeout_at(budget_end):
            await prober.probe(target, module.settings, ctx)
    except ProbeFailure as failure:
        attempt.raw, attempt.message = failure.reason, failure.message
    except TimeoutError:
        attempt.raw, attempt.message = ctx.timeout_reason, f"timed out after {budget:.3g}s"
    else:
        duration = time.perf_counter() - started
        attempt.response_time = ctx.observed.get("response_time", duration)
        _check(module, attempt, ctx)
    _verdict(module, attempt, ctx)
    timings = {
        "attempt": number,
        "duration_seconds": round(time.perf_counter() - started, 6),
        "budget_seconds": round(budget, 6),
    }
    if attempt.response_time is not None:
        timings["response_time_seconds"] = round(attempt.response_time, 6)
    if attempt.reason is None:
        ctx.log.info("Attempt succeeded", **timings)
    else:
        ctx.log.warn("Attempt failed", **timings, reason=attempt.reason, error=attempt.message)
    return attempt


def _check(module: Module, attempt: Attempt, ctx: ProbeContext) -> None:
    """The checks after the prober succeeded: every assertion is evaluated (and shown);
    too_slow wins over assertion_failed as the reason."""
    failed = evaluate(module.assertions, ctx)
    limit = module.max_response_time
    response_time = attempt.response_time or 0.0
    if limit is not None and response_time > limit:
        attempt.raw = Reason.TOO_SLOW
        attempt.message = f"response time {response_time:.6g}s is over max_response_time {limit:g}s"
    elif failed is not None:
        attempt.raw, attempt.message = Reason.ASSERTION_FAILED, failed


def _verdict(module: Module, attempt: Attempt, ctx: ProbeContext) -> None:
    if not module.should_fail:
        attempt.reason = attempt.raw
    elif attempt.raw is None:
        attempt.reason = Reason.UNEXPECTED_SUCCESS
        attempt.message = "the checks passed, but the module has should_fail: true"
    else:
        ctx.log.info(
            "Checks failed, as should_fail expects", reason=attempt.raw, error=attempt.message
        )
        attempt.reason, attempt.message = None, ""


def _record(module: Module, attempts: list[Attempt], ctx: ProbeContext) -> bool:
    """Add the policies' metrics to the last attempt's; whether the probe was degraded."""
    metrics, last = ctx.metrics, attempts[-1]
    slow = False
    if module.retries is not None:
        metrics.set(PROBE_ATTEMPTS, len(attempts))
        for attempt in attempts:
            if attempt.reason is not None:
                metrics.set(ATTEMPT_FAILURE_REASON, 1, str(attempt.number), attempt.reason)
    degraded = module.degraded_response_time
    if degraded is not None:
        slow = last.reason is None and (last.response_time or 0.0) > degraded
        metrics.set(PROBE_DEGRADED, 1 if slow else 0)
    if module.should_fail:
        metrics.set(PROBE_RAW_SUCCESS, 1 if last.raw is None else 0)
        if last.raw is not None:
            metrics.set(RAW_FAILURE_REASON, 1, last.raw)
    return slow
