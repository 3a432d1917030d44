"""What the database stores, as plain values: a monitor and one result of its checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

CheckStatus = Literal["up", "down", "timeout"]


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
