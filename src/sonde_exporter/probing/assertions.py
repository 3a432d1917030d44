"""Assertions: each one compares a value the prober observed with the module's target.

All of a module's assertions are evaluated, so every `probe_assertion_success` series is
there when the prober succeeded; the first one that failed names the failure.
"""

from __future__ import annotations

from collections.abc import Callable

from ..config.policies import Assertion
from ..probe_metrics import ProbeGauge
from ..prober_base import ProbeContext

ASSERTION_SUCCESS = ProbeGauge(
    "probe_assertion_success",
    "Whether each assertion of the module held (1) or not (0), by its position from 0",
    ("assertion", "source", "comparison"),
)
_SHOWN_BYTES = 256


def evaluate(assertions: tuple[Assertion, ...], ctx: ProbeContext) -> str | None:
    """Set a gauge per assertion; return the first failed one's description, or None."""
    failed: str | None = None
    for index, assertion in enumerate(assertions):
        observed = _observed(assertion, ctx)
        held = observed is not None and _holds(assertion, observed)
        ctx.metrics.set(
            ASSERTION_SUCCESS, 1 if held else 0, str(index), assertion.source, assertion.comparison
        )
        target = "" if assertion.target is None else f" {assertion.target!r}"
        description = (
            f"assertion {index}: {assertion.source} {assertion.comparison}{target}; "
            f"observed {_show(observed, assertion.source)}"
        )
        ctx.log.debug("Assertion held" if held else "Assertion failed", detail=description)
        if not held and failed is None:
            failed = description
    return failed


def _observed(assertion: Assertion, ctx: ProbeContext) -> bytes | float | None:
    if assertion.source == "response_data":
        return bytes(ctx.response_data or b"")
    return (ctx.observed or {}).get(assertion.source)


def _holds(assertion: Assertion, observed: bytes | float) -> bool:
    comparison = assertion.comparison
    if isinstance(observed, bytes):
        if comparison == "matches":
            return assertion.pattern is not None and assertion.pattern.search(observed) is not None
        return _DATA_CHECKS[comparison](observed, assertion.text)
    return _NUMBER_CHECKS[comparison](observed, assertion.number)


_DATA_CHECKS: dict[str, Callable[[bytes, bytes], bool]] = {
    "equals": lambda data, text: data == text,
    "not_equals": lambda data, text: data != text,
    "contains": lambda data, text: text in data,
    "not_contains": lambda data, text: text not in data,
    "is_empty": lambda data, _: not data,
    "not_empty": lambda data, _: bool(data),
}
_NUMBER_CHECKS: dict[str, Callable[[float, float], bool]] = {
    "equals": lambda value, target: value == target,
    "not_equals": lambda value, target: value != target,
    "less_than": lambda value, target: value < target,
    "greater_than": lambda value, target: value > target,
}


def _show(observed: bytes | float | None, source: str) -> str:
    if observed is None:
        return "nothing (not measured by this probe)"
    if isinstance(observed, bytes):
        more = f" (first {_SHOWN_BYTES} bytes)" if len(observed) > _SHOWN_BYTES else ""
        return f"{len(observed)} bytes {observed[:_SHOWN_BYTES]!r}{more}"
    return f"{observed:.6g}" if source == "packet_loss" else f"{observed:.6g}s"
