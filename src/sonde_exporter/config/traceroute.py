"""The `traceroute:` settings of a module with `traceroute_on_error: true`."""

from __future__ import annotations

from pydantic import Field, field_validator

from .fields import Duration, Strict


class TracerouteSettings(Strict):
    """How far and how often a failed probe traces the path to the address it probed."""

    max_hops: int = Field(default=30, ge=1, le=255)
    interval: Duration = 60.0
    """At most one sweep per target per interval; probes in between reuse the latest, so a
    flapping or abused target cannot turn the exporter into a packet cannon."""
    budget: Duration = 2.0
    """Time kept free at the end of the probe's deadline for the sweep: the attempts run
    under the deadline minus this."""

    @field_validator("interval")
    @classmethod
    def _interval_range(cls, value: float) -> float:
        if not 1 <= value <= 86400:
            raise ValueError("interval must be from 1s to 24h")
        return value

    @field_validator("budget")
    @classmethod
    def _budget_range(cls, value: float) -> float:
        if not 0.1 <= value <= 30:
            raise ValueError("budget must be from 100ms to 30s")
        return value


DEFAULT_TRACEROUTE = TracerouteSettings()
