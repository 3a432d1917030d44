"""The address choice every network prober's block shares (its own module: email.py and
modules.py both build on it, and modules.py imports email.py)."""

from __future__ import annotations

from functools import cached_property

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
        """The module's ip_filter and allowed_ports (ip_filter.py); the default filter until
        the module's and the config's validation set it (use_filter)."""
        return DEFAULT_FILTER

    def use_filter(self, target_filter: TargetFilter) -> None:
        """Set at validation. Stored as the cached property's value: read on every probe, it
        then costs what a field does (a pydantic private attribute costs microseconds)."""
        self.__dict__["target_filter"] = target_filter
