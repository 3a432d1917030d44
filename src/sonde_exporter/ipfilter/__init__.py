"""The IP filter against open-proxy misuse: which addresses and ports a module's probes may reach."""

from .guard import DEFAULT_FILTER, METADATA_ADDRESSES, TargetFilter, TargetForbidden
from .matcher import PrefixTable, Rule, address_key

__all__ = [
    "DEFAULT_FILTER",
    "METADATA_ADDRESSES",
    "PrefixTable",
    "Rule",
    "TargetFilter",
    "TargetForbidden",
    "address_key",
]
