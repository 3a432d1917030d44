"""The address choice every network prober's block shares (its own module: email.py and
modules.py both build on it, and modules.py imports email.py)."""

from __future__ import annotations

from functools import cached_property
from typing import Self

from pydantic import field_validator

from ..ipfilter import DEFAULT_FILTER, TargetFilter
from .fields import IpProtocol, Strict, check_ip


class AddressChoice(Strict):
    """How a network prober picks the address to probe from and to (see resolve.py)."""

    preferred_ip_protocol: IpProtocol = "ip4"
    ip_protocol_fallback: bool = True
    source_ip_address: str | None = None

    @field_validator("source_ip_address")
    @classmethod
    def _ip_literal(cls, value: str | None) -> str | None:
        if value is not None:
            check_ip(value)
        return value

    @cached_property
    def target_filter(self) -> TargetFilter:
        """The module's ip_filter and allowed_ports (ip_filter.py): the default filter for a
        block validated on its own; its module's validation puts a copy that carries the
        module's filter in its place (with_filter)."""
        return DEFAULT_FILTER

    def with_filter(self, target_filter: TargetFilter) -> Self:
        """A copy of this block that applies `target_filter`; the block itself never changes.
        The copy gets the filter as its cached property's value before anyone holds it: read
        on every probe, it then costs what a field does. A pydantic private attribute would be
        served by __getattr__ (+7 % instructions per probe, bench/README.md) and compared by
        ==, so that equal modules of two loads of one config would differ (a reload would
        re-plan their monitors)."""
        copy = self.model_copy()
        copy.__dict__["target_filter"] = target_filter
        return copy
