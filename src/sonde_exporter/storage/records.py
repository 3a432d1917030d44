"""What the store holds and hands out, as plain values: a monitor, one result of its checks,
the lighter check the status page draws, uptime sums, an API key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

CheckStatus = Literal["up", "down", "timeout"]
HOUR = 3600
"""Seconds of one roll-up: results are summed per monitor and hour."""
UPTIME_WINDOWS = (24, 7 * 24, 30 * 24)
"""Hours of the uptime columns: 24 h, 7 d and 30 d (the current hour counts as one)."""

Sums = tuple[int, ...]
"""Checks and checks up, per window of UPTIME_WINDOWS: (checks, up, checks, up, checks, up)."""


@dataclass(frozen=True, slots=True)
class MonitorRecord:
    """A monitor as stored. `spec` keeps what its creator sent beyond the common columns
    (the API's host, port and policies), as JSON; `timeout` None means the default."""

    id: str
    kind: str
    source: Literal["config", "api"]
    name: str
    module: str
    target: str
    interval: float
    timeout: float | None
    status: str
    created_at: float
    updated_at: float
    labels: dict[str, str] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)

    def same_definition(self, other: MonitorRecord) -> bool:
        """Whether both define the same checks (timestamps aside)."""
        return (
            self.kind,
            self.name,
            self.module,
            self.target,
            self.interval,
            self.timeout,
            self.status,
            self.labels,
            self.spec,
        ) == (
            other.kind,
            other.name,
            other.module,
            other.target,
            other.interval,
            other.timeout,
            other.status,
            other.labels,
            other.spec,
        )


@dataclass(frozen=True, slots=True)
class ResultRecord:
    """One check's outcome. `seq` is the row's number, assigned when it is written."""

    monitor_id: str
    checked_at: float
    status: CheckStatus
    response_time: float | None
    """Seconds; None when the check failed."""
    reason: str | None
    error: str | None
    attempts: int = 1
    degraded: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None


def result_id(kind: str, seq: int) -> str:
    """A result's public ID: `tcpr_123` for the 123rd row, whatever its monitor."""
    return f"{kind}r_{seq}"


class Check(NamedTuple):
    """The part of a result a sparkline, chart or timeline draws."""

    checked_at: float
    status: str
    response_time: float | None
    degraded: int
    """0 or 1, as stored."""


def ratios(sums: Sums) -> tuple[float | None, ...]:
    """Up / checks per window; None where there was no check."""
    return tuple(
        up / checks if checks else None for checks, up in zip(sums[::2], sums[1::2], strict=True)
    )


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    """An API key as stored: its SHA-256, never the key."""

    name: str
    hash: bytes
    scopes: frozenset[str]
    created_at: float
    last_used_at: float | None
