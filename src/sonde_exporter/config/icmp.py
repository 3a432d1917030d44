"""The `icmp:` block: how many echo requests, how far apart, and the grace the prober keeps."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .address import AddressChoice
from .fields import Duration, duration_between

ECHO_GRACE = 0.25
"""Most seconds the ICMP prober keeps before its deadline (a tenth of the budget when less)
to count the losses and answer before the deadline cancels the probe."""


ECHO_COUNT = Field(ge=1, le=100)
PAYLOAD_SIZE = Field(ge=0, le=65507)
"""Bytes of an echo request's payload: what fits an IPv4 datagram (icmp.payload_size and the
API's packetSize alike)."""


def echo_grace(budget: float) -> float:
    """Seconds the ICMP prober keeps before the end of a `budget` for the last reply: the
    rule the config's check (IcmpModule.fits) and the prober share."""
    return min(ECHO_GRACE, 0.1 * budget)


class IcmpModule(AddressChoice):
    """The `icmp:` block: how many echo requests, how far apart, and when the probe succeeds."""

    count: Annotated[int, ECHO_COUNT] = 3
    interval: Annotated[Duration, duration_between(0, 60, "0s to 1m")] = 0.1
    payload_size: Annotated[int, PAYLOAD_SIZE] = 56
    ttl: int | None = Field(default=None, ge=1, le=255)
    dont_fragment: bool = False
    max_packet_loss_ratio: float | None = Field(default=None, ge=0, le=1)

    def fits(self, budget: float) -> bool:
        """Whether the echo requests can all be sent within `budget` seconds, keeping the
        prober's grace for the last reply (probers/icmp.py runs the same test)."""
        return self.send_span < budget - echo_grace(budget)

    @property
    def send_span(self) -> float:
        """Seconds from the first echo request to the last."""
        return (self.count - 1) * self.interval
