"""The address choice every network prober's block shares (its own module: email.py and
modules.py both build on it, and modules.py imports email.py)."""

from __future__ import annotations

from pydantic import PrivateAttr, field_validator

from ..ipfilter import DEFAULT_FILTER, TargetFilter
from .fields import IpProtocol, Strict, check_ip


class AddressChoice(Strict):
    """How a network prober picks the address to probe from and to (see resolve.py)."""

    preferred_ip_protocol: IpProtocol = "ip4"
    ip_protocol_fallback: bool = True
    source_ip_address: str | None = None
    # A factory: pydantic would deep-copy a plain default for every block.
    _target_filter: TargetFilter = PrivateAttr(default_factory=lambda: DEFAULT_FILTER)

    @property
    def target_filter(self) -> TargetFilter:
        """The module's ip_filter and allowed_ports (ip_filter.py), set when the module and
        the config are validated; the default filter until then."""
        return self._target_filter

    @field_validator("source_ip_address")
    @classmethod
    def _ip_literal(cls, value: str | None) -> str | None:
        if value is not None:
            check_ip(value)
        return value
