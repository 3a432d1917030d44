"""The IP filter against open-proxy misuse: which addresses and ports a module's probes may reach."""

from .guard import DEFAULT_FILTER, TargetFilter, TargetForbidden
from .matcher import address_key

__all__ = ["DEFAULT_FILTER", "TargetFilter", "TargetForbidden", "address_key"]
