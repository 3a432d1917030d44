"""The `traceroute:` settings of a module with `traceroute_on_error: true`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .fields import Duration, Strict, duration_between


class TracerouteSettings(Strict):
    """How far and how often a failed probe traces the path to the address it probed."""

    max_hops: int = Field(default=30, ge=1, le=255)
    interval: Annotated[Duration, duration_between(1, 86400, "1s to 24h")] = 60.0
    """At most one sweep per target per interval; probes in between reuse the latest, so a
    flapping or abused target cannot turn the exporter into a packet cannon."""
    budget: Annotated[Duration, duration_between(0.1, 30, "100ms to 30s")] = 2.0
    """Time kept free at the end of the probe's deadline for the sweep: the attempts run
    under the deadline minus this."""


DEFAULT_TRACEROUTE = TracerouteSettings()
