"""A module's filter as the probers apply it: the port before any lookup, the address after.

Built once per module at load (config/ip_filter.py). A probe of an address already found
allowed pays one set lookup (`passed`), and of a port only when the module lists ports; a
module with no `ip_filter` and no `allowed_ports` has the default filter, which only denies
the cloud metadata addresses, at that same cost. An address is judged under each of its
readings (matcher.readings: the unspecified address as loopback too, an embedded IPv4 address
too): any denial refuses it, and only an address every reading of which an `allowed` entry
covers is explicitly allowed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from .matcher import Key, Network, PrefixTable, Rule, key_text, readings, unmapped

METADATA_ADDRESSES: tuple[Network, ...] = (
    ipaddress.IPv4Network("169.254.169.254/32"),
    ipaddress.IPv6Network("fd00:ec2::254/128"),
)
"""Cloud instance metadata endpoints (AWS, GCP, Azure, ...; AWS's IPv6 one): denied for every
module unless an `allowed` entry names the address itself, whatever the default says."""

_METADATA_RULE = Rule(
    allow=False,
    name="a cloud metadata address, denied unless an ip_filter allowed entry names it",
    explicit=True,
)
_THIS_NETWORK = Rule(
    allow=False,
    name="not a destination (0.0.0.0/8 but 0.0.0.0 names no host; Linux refuses it or sends "
    "it to the default gateway)",
    explicit=True,
)
"""For 0.0.0.0/8 but 0.0.0.0 itself, whatever the rules say: no rule could make it a host."""
_THIS_NETWORK_END = 1 << 24
_PASSED_LIMIT = 4096
PortRange = tuple[int, int]


class TargetForbidden(Exception):
    """A destination the module's filter refuses, raised before any packet is sent to it.

    Not a ProbeFailure on purpose: no retry, should_fail or traceroute may act on it. /probe
    answers it with 403 and this one-line message; a scheduled check records a failure with
    reason `target_forbidden`.
    """

    reason = "target_forbidden"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TargetFilter:
    """Which addresses and ports one module may probe."""

    __slots__ = ("_ports_text", "_table", "passed", "ports")

    def __init__(self, table: PrefixTable, ports: tuple[PortRange, ...] = ()) -> None:
        self._table = table
        self.ports = ports
        """allowed_ports as (low, high) ranges; empty: any port."""
        self._ports_text = ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ports)
        self.passed: set[str] = set()
        """Address strings found allowed (not only explicitly): resolve() checks membership
        inline and calls check_address for the others."""

    @classmethod
    def build(
        cls,
        allowed: Iterable[Network] = (),
        denied: Iterable[Network] = (),
        default_allow: bool = True,
        ports: tuple[PortRange, ...] = (),
    ) -> TargetFilter:
        """From validated rules (no network in both lists); adds the metadata denial."""
        rules: dict[Network, Rule] = {}
        for network in denied:
            rules[unmapped(network)] = Rule(False, f"ip_filter denied: {network}", explicit=True)
        for network in allowed:
            rules[unmapped(network)] = Rule(True, f"ip_filter allowed: {network}", explicit=True)
        for network in METADATA_ADDRESSES:
            rules.setdefault(network, _METADATA_RULE)  # an entry naming it decides instead
        verdict = "allow" if default_allow else "deny"
        default = Rule(default_allow, f"ip_filter default: {verdict}", explicit=False)
        return cls(PrefixTable(rules, default), ports)

    def check_port(self, port: int | None) -> None:
        """Raise TargetForbidden for a port outside allowed_ports (None: no port, as ICMP)."""
        if port is None or not self.ports:
            return
        if not any(lo <= port <= hi for lo, hi in self.ports):
            raise TargetForbidden(
                f"port {port} is not in the module's allowed_ports ({self._ports_text})"
            )

    def check_address(self, ip: str, *, explicit: bool = False) -> None:
        """Raise TargetForbidden unless `ip` (any spelling) is allowed under each of its
        readings; with `explicit`, only `allowed` entries will do (where the module's
        credentials would follow)."""
        rule, target = self._verdict(ip)
        if not rule.allow:
            raise TargetForbidden(f"{target} is denied: {rule.name}")
        if explicit and not rule.explicit:
            raise TargetForbidden(
                f"{target} overrides the module's mail server and no ip_filter allowed entry "
                f"covers it ({rule.name} decides); the module's credentials go only to its own "
                "servers or to explicitly allowed addresses"
            )
        if len(self.passed) >= _PASSED_LIMIT:
            self.passed.clear()
        self.passed.add(ip)

    def _verdict(self, ip: str) -> tuple[Rule, str]:
        """The rule that decides `ip` and how to name what it judged: the first reading
        denied, else the first allowed only by the default (an explicit allow must hold for
        every reading), else the address's own rule."""
        keys = readings(ip)
        rule, reading = self._rule(keys[0]), keys[0]
        for key in keys[1:]:
            if not rule.allow:
                break
            other = self._rule(key)
            if not other.allow or (rule.explicit and not other.explicit):
                rule, reading = other, key
        if reading == keys[0]:
            return rule, f"target address {ip}"
        return rule, f"target address {ip} (read as {key_text(reading)})"

    def _rule(self, key: Key) -> Rule:
        version, value = key
        if version == 4 and 0 < value < _THIS_NETWORK_END:
            return _THIS_NETWORK
        return self._table.lookup(key)

    def check(self, ip: str, port: int | None, *, explicit: bool = False) -> None:
        self.check_port(port)
        self.check_address(ip, explicit=explicit)


DEFAULT_FILTER = TargetFilter.build()
"""The filter of a module without ip_filter (and of a config without one): allow all but the
cloud metadata addresses."""
