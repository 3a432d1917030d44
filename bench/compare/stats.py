"""Percentiles and medians, the one way every figure of the bench is summarized."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of an ascending, non-empty list: a value that was
    really observed, never an interpolation between two."""
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary_ms(seconds: Iterable[float]) -> dict[str, float] | None:
    """n, p50, p90, p99, max and mean of durations in seconds, in ms; None when empty."""
    ordered = sorted(seconds)
    if not ordered:
        return None
    figures = {f"p{round(q * 100)}": percentile(ordered, q) for q in (0.5, 0.9, 0.99)}
    figures |= {"max": ordered[-1], "mean": statistics.fmean(ordered)}
    return {"n": len(ordered), **{k: round(v * 1000, 3) for k, v in figures.items()}}


def median(values: Iterable[float | None]) -> float | None:
    """Median of the values present (None skipped), rounded for tables; None when none."""
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 4) if present else None
