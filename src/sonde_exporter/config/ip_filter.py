"""The `ip_filter:` block (top level and per module) and a module's `allowed_ports`.

The shape is the one proposed for blackbox_exporter (its PR #982): `default`, `allowed`,
`denied`, the longest matching prefix deciding. Validated here and turned into the matcher
that probes use (ipfilter/) once, at load.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import (
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from ..ipfilter import TargetFilter
from ..ipfilter.guard import PortRange
from ..ipfilter.matcher import Network, unmapped
from .errors import field_error
from .fields import Strict


def _network(value: object) -> Network:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("expected an IP network in CIDR form (10.0.0.0/8) or an IP address")
    text = value.strip()
    if "%" in text:
        raise ValueError(f"{value!r}: zone IDs have no place in a filter rule")
    try:
        return ipaddress.ip_network(text)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IP network (CIDR such as 10.0.0.0/8) or an IP address; "
                "host names are not allowed"
            ) from None
        raise ValueError(f"{value!r} has host bits set ({exc}); did you mean {loose}?") from None


NetworkRule = Annotated[Network, PlainValidator(_network), PlainSerializer(str, return_type=str)]
"""A CIDR network; a bare address is a /32 (IPv4) or /128 (IPv6)."""


class IpFilter(Strict):
    """Which target addresses a module may probe. `default` may be left out when only one
    list is given: deny with only `allowed`, allow with only `denied`."""

    default: Literal["allow", "deny"] | None = None
    allowed: tuple[NetworkRule, ...] = ()
    denied: tuple[NetworkRule, ...] = ()

    @model_validator(mode="after")
    def _complete(self) -> IpFilter:
        if self.allowed and self.denied and self.default is None:
            raise field_error(
                "default", "required when both allowed and denied are given (allow or deny)"
            )
        if not self.allowed and not self.denied and self.default is None:
            raise field_error(
                "allowed",
                "give allowed, denied or both; an empty ip_filter would filter nothing "
                "(write default: allow to allow every address but the cloud metadata ones)",
            )
        return self

    @field_validator("denied")
    @classmethod
    def _not_both(cls, value: tuple[Network, ...], info: ValidationInfo) -> tuple[Network, ...]:
        allowed = {unmapped(network) for network in info.data.get("allowed", ())}
        both = [str(network) for network in value if unmapped(network) in allowed]
        if both:
            raise ValueError(f"{', '.join(both)} cannot be both allowed and denied")
        return value

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Only the keys given, as a user would write them."""
        data: dict[str, Any] = handler(self)
        return {key: value for key, value in data.items() if value not in (None, [], ())}

    @property
    def default_allow(self) -> bool:
        if self.default is not None:
            return self.default == "allow"
        return not self.allowed

    def target_filter(self, ports: tuple[PortRange, ...]) -> TargetFilter:
        return TargetFilter.build(self.allowed, self.denied, self.default_allow, ports)


def _port_range(value: object) -> PortRange:
    if isinstance(value, int) and not isinstance(value, bool):
        low = high = value
    elif isinstance(value, str) and value.count("-") == 1:
        first, _, last = (part.strip() for part in value.partition("-"))
        if not (first.isascii() and first.isdigit() and last.isascii() and last.isdigit()):
            raise ValueError(f'{value!r} is not a port range such as "8000-8100"')
        low, high = int(first), int(last)
        if low > high:
            raise ValueError(f"{value!r}: the range is reversed (write {high}-{low})")
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        low = high = int(value)
    else:
        raise ValueError('expected a port (443) or a range of ports ("8000-8100")')
    if low < 1 or high > 65535:
        raise ValueError(f"{value!r}: ports go from 1 to 65535")
    return low, high


def _port_text(value: PortRange) -> int | str:
    low, high = value
    return low if low == high else f"{low}-{high}"


PortRule = Annotated[
    PortRange, PlainValidator(_port_range), PlainSerializer(_port_text, return_type=int | str)
]
"""One entry of allowed_ports: a port, or a range "low-high" (inclusive)."""
