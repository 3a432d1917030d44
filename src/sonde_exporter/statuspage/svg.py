"""Inline SVG drawn on the server: a sparkline, a response-time chart and an up/down timeline.

Only presentation attributes and classes, never a style attribute, so that a strict
Content-Security-Policy (style-src 'self') leaves them intact; colours come from the
stylesheet by state class.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from ..storage.records import Check
from .states import State, result_state
from .text import clock, milliseconds


def _scale(results: Sequence[Check], *floors: float | None) -> float:
    times = [r.response_time for r in results if r.response_time is not None]
    return max([*times, *(f for f in floors if f is not None), 1e-6]) * 1.1


@functools.cache
def _spark_xs(count: int, width: int) -> tuple[int, ...]:
    step = (width - 6) / max(count - 1, 1)
    return tuple(round(3 + i * step) for i in range(count))


class Sparklines:
    """Sparklines drawn once per monitor and set of checks: a monitor's checks only grow at
    the new end and shrink at the old one, so its row key, how many checks there are and the
    times of the first and last tell whether the drawing would change."""

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._drawn: dict[tuple[int, int, float, float], str] = {}

    def draw(self, key: int, newest_first: Sequence[Check]) -> str:
        if not newest_first:
            return ""
        signature = (
            key,
            len(newest_first),
            newest_first[0].checked_at,
            newest_first[-1].checked_at,
        )
        svg = self._drawn.get(signature)
        if svg is None:
            if len(self._drawn) >= self.limit:
                self._drawn.clear()  # drawings of older checks: never asked for again
            svg = self._drawn[signature] = sparkline(newest_first)
        return svg


def sparkline(newest_first: Sequence[Check], width: int = 120, height: int = 28) -> str:
    """One dot per result (oldest on the left), a failed check on the baseline.

    /status draws a thousand of these, so they are cheap to write and to send: whole-pixel
    coordinates, and the dots as zero-length path segments with round caps, one path per
    state, rather than an element per dot.
    """
    if not newest_first:
        return ""
    results = newest_first[::-1]
    times = [c.response_time for c in results]
    scale = (height - 6) / _scale(results)
    baseline = height - 3
    xs = _spark_xs(len(results), width)
    ys = [baseline if t is None else int(baseline + 0.5 - t * scale) for t in times]
    line = " ".join([f"{x},{y}" for x, y, t in zip(xs, ys, times, strict=True) if t is not None])
    keys = [c.status if c.status != "up" else "degraded" if c.degraded else "up" for c in results]
    dots = {
        key: [f"M{x} {y}h0" for x, y, k in zip(xs, ys, keys, strict=True) if k == key]
        for key in dict.fromkeys(keys)
    }
    paths = "".join(f'<path class="dots {key}" d="{"".join(d)}"/>' for key, d in dots.items())
    return (
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{len(results)} recent results">'
        f'<polyline points="{line}"/>{paths}</svg>'
    )


@dataclass(frozen=True, slots=True)
class Threshold:
    key: str
    label: str
    seconds: float


def chart(oldest_first: Sequence[Check], thresholds: Sequence[Threshold], now: float) -> str:
    """Response time over the results shown, with the module's thresholds as dashed lines."""
    width, height, left, bottom, top_pad = 640, 220, 64, 22, 8
    if not oldest_first:
        return '<p class="empty">No results yet.</p>'
    top = _scale(oldest_first, *(t.seconds for t in thresholds))
    start = oldest_first[0].checked_at
    span = max(now - start, 1e-3)
    plot_w, plot_h = width - left - 8, height - bottom - top_pad

    def x(at: float) -> float:
        return left + plot_w * (at - start) / span

    def y(value: float) -> float:
        return top_pad + plot_h * (1 - value / top)

    parts = [
        f'<line class="axis" x1="{left}" y1="{y(0):.1f}" x2="{width - 8}" y2="{y(0):.1f}"/>',
        f'<text class="tick" x="{left - 4}" y="{y(0):.1f}" text-anchor="end">0</text>',
        f'<text class="tick" x="{left - 4}" y="{y(top / 1.1) + 4:.1f}" text-anchor="end">'
        f"{milliseconds(top / 1.1)}</text>",
        f'<text class="tick" x="{left}" y="{height - 6}">{clock(start)}</text>',
        f'<text class="tick" x="{width - 8}" y="{height - 6}" text-anchor="end">{clock(now)}</text>',
    ]
    for t in thresholds:
        ty = y(t.seconds)
        parts.append(
            f'<line class="thr {t.key}" x1="{left}" y1="{ty:.1f}" x2="{width - 8}" y2="{ty:.1f}"/>'
            f'<text class="thr-label {t.key}" x="{left + 4}" y="{ty - 3:.1f}">'
            f"{escape(t.label)} {milliseconds(t.seconds)}</text>"
        )
    line = " ".join(
        f"{x(r.checked_at):.1f},{y(r.response_time):.1f}"
        for r in oldest_first
        if r.response_time is not None
    )
    parts.append(f'<polyline class="rt" points="{line}"/>')
    for r in oldest_first:
        state = result_state(r)
        value = 0.0 if r.response_time is None else r.response_time
        shown = "no response" if r.response_time is None else milliseconds(r.response_time)
        parts.append(
            f'<circle class="pt {state.key}" cx="{x(r.checked_at):.1f}" cy="{y(value):.1f}">'
            f"<title>{clock(r.checked_at)} {state.label}: {shown}</title></circle>"
        )
    label = f"Response time of the last {len(oldest_first)} results"
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{label}">{"".join(parts)}</svg>'
    )


@dataclass(frozen=True, slots=True)
class Period:
    state: State
    start: float
    end: float
    checks: int


def periods(oldest_first: Sequence[Check], now: float) -> list[Period]:
    """Runs of consecutive results in the same state; each lasts until the next one starts."""
    runs: list[Period] = []
    for r in oldest_first:
        state = result_state(r)
        if runs and runs[-1].state == state:
            last = runs[-1]
            runs[-1] = Period(state, last.start, r.checked_at, last.checks + 1)
        else:
            if runs:
                last = runs[-1]
                runs[-1] = Period(last.state, last.start, r.checked_at, last.checks)
            runs.append(Period(state, r.checked_at, r.checked_at, 1))
    if runs:
        last = runs[-1]
        runs[-1] = Period(last.state, last.start, max(now, last.end), last.checks)
    return runs


def timeline(runs: Sequence[Period], width: int = 640, height: int = 18) -> str:
    """The periods as coloured bands along the time the results cover."""
    if not runs:
        return ""
    start, span = runs[0].start, max(runs[-1].end - runs[0].start, 1e-3)
    bands = []
    for p in runs:
        x = width * (p.start - start) / span
        w = max(width * (p.end - p.start) / span, 1.0)
        bands.append(
            f'<rect class="band {p.state.key}" x="{x:.1f}" y="0" width="{w:.1f}" '
            f'height="{height}"><title>{p.state.label} from {clock(p.start)} '
            f"({p.checks} checks)</title></rect>"
        )
    return (
        f'<svg class="timeline" viewBox="0 0 {width} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{len(runs)} periods">{"".join(bands)}</svg>'
    )
