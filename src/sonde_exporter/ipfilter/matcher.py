"""Longest-prefix matching of IP addresses against allow/deny rules, built once at load.

An address is looked up as (version, integer): the zone ID is dropped and an IPv4-mapped IPv6
address (::ffff:a.b.c.d, however written) is read as the IPv4 address it reaches, so every
spelling of one destination meets the same rules.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_BITS = {4: 32, 6: 128}
_MAPPED = 0xFFFF
"""The 96 high bits of an IPv4-mapped IPv6 address, ::ffff:0:0/96."""


@dataclass(frozen=True, slots=True)
class Rule:
    """The rule that decided an address: allow or deny, and how to name it in a message."""

    allow: bool
    name: str
    """`ip_filter allowed: 10.0.0.0/8`, `ip_filter default: deny`, ..."""
    explicit: bool
    """Whether an `allowed` or `denied` entry decided (not the default)."""


def address_key(ip: str) -> tuple[int, int]:
    """(4 or 6, the address as an integer) of an IP literal; ValueError for anything else."""
    text = ip.partition("%")[0]
    try:
        if ":" not in text:
            return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text))
        value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text))
    except OSError:
        raise ValueError(f"{ip!r} is not an IP address") from None
    if value >> 32 == _MAPPED:
        return 4, value & 0xFFFFFFFF
    return 6, value


def unmapped(network: Network) -> Network:
    """An IPv6 network inside ::ffff:0:0/96 as the IPv4 network it covers; others unchanged."""
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.IPv4Network((mapped, network.prefixlen - 96))
    return network


class PrefixTable:
    """Networks with a rule each, and a default: lookup(key) gives the longest match's rule.

    Per IP version, one dict per prefix length present, probed from the longest length down:
    a lookup costs one shift and one dict probe per distinct length, whatever the rule count.
    """

    __slots__ = ("_default", "_tables")

    def __init__(self, rules: dict[Network, Rule], default: Rule) -> None:
        self._default = default
        by_length: dict[int, dict[int, dict[int, Rule]]] = {4: {}, 6: {}}
        for network, rule in rules.items():
            net = unmapped(network)
            shift = _BITS[net.version] - net.prefixlen
            prefixes = by_length[net.version].setdefault(net.prefixlen, {})
            prefixes[int(net.network_address) >> shift] = rule
        self._tables = {
            version: tuple(
                (_BITS[version] - length, prefixes)
                for length, prefixes in sorted(lengths.items(), reverse=True)
            )
            for version, lengths in by_length.items()
        }

    def lookup(self, key: tuple[int, int]) -> Rule:
        version, value = key
        for shift, prefixes in self._tables[version]:
            rule = prefixes.get(value >> shift)
            if rule is not None:
                return rule
        return self._default
