"""A monitor's state as the page shows it: from its status and its last result, with the
order that puts failures first."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..storage import MonitorRecord


@dataclass(frozen=True, slots=True)
class State:
    key: str
    """The CSS class and the `state` query value."""
    label: str
    rank: int
    """Lower is listed first: failed monitors lead."""


DOWN = State("down", "Down", 0)
TIMEOUT = State("timeout", "Timeout", 1)
DEGRADED = State("degraded", "Degraded", 2)
NEVER = State("never", "Never checked", 3)
MAINTENANCE = State("maintenance", "Maintenance", 4)
UP = State("up", "Up", 5)
DISABLED = State("disabled", "Disabled", 6)

STATES: tuple[State, ...] = (DOWN, TIMEOUT, DEGRADED, NEVER, MAINTENANCE, UP, DISABLED)
BY_KEY = {s.key: s for s in STATES}
FAILED = frozenset({DOWN, TIMEOUT})


class Outcome(Protocol):
    """A check's outcome: a stored result or the lighter records.Check."""

    @property
    def status(self) -> str: ...

    @property
    def degraded(self) -> int: ...


def result_state(result: Outcome) -> State:
    """What one check said (the colour of its point on a sparkline, its row in a table)."""
    if result.status == "up":
        return DEGRADED if result.degraded else UP
    return DOWN if result.status == "down" else TIMEOUT


def monitor_state(record: MonitorRecord, last: Outcome | None) -> State:
    """Maintenance and disabled say more than the last result (which may predate them)."""
    if record.status == "disabled":
        return DISABLED
    if record.status == "maintenance":
        return MAINTENANCE
    return NEVER if last is None else result_state(last)
