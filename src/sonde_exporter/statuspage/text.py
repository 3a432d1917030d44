"""How numbers and times read on the status page (UTC, so every viewer sees the same)."""

from __future__ import annotations

import time


def milliseconds(seconds: float | None) -> str:
    if seconds is None:
        return "\u2013"
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms"


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at))


def moment(at: float) -> str:
    """A full UTC time, for tables and the last check."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def percent(ratio: float | None) -> str:
    if ratio is None:
        return "\u2013"
    value = ratio * 100
    return "100%" if value == 100 else f"{min(value, 99.99):.2f}%"
