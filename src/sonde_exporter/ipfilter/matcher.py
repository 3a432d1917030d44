"""Longest-prefix matching of IP addresses against allow/deny rules, built once at load.

An address is looked up as (version, integer): the zone ID is dropped and an IPv4-mapped IPv6
address (::ffff:a.b.c.d, however written) is read as the IPv4 address it reaches, so every
spelling of one destination meets the same rules. An address that reaches another one is
also read as that other one (`readings`): the unspecified address as loopback, where the
kernel connects it, and an IPv6 address that embeds an IPv4 one as that IPv4 address too.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

Key = tuple[int, int]
"""An address as (4 or 6, its integer value)."""

_BITS = {4: 32, 6: 128}
_MAPPED = 0xFFFF
"""The 96 high bits of an IPv4-mapped IPv6 address, ::ffff:0:0/96."""
_NAT64 = 0x0064_FF9B_0000_0000_0000_0000
"""The 96 high bits of NAT64's well-known prefix, 64:ff9b::/96 (RFC 6052)."""
_6TO4 = 0x2002
"""The 16 high bits of 6to4's 2002::/16 (RFC 3056): the IPv4 address is in bits 16 to 48."""
_LOOPBACK: dict[int, Key] = {4: (4, 0x7F000001), 6: (6, 1)}
"""Where Linux connects the unspecified address of each version: 127.0.0.1 and ::1."""


@dataclass(frozen=True, slots=True)
class Rule:
    """The rule that decided an address: allow or deny, and how to name it in a message."""

    allow: bool
    name: str
    """`ip_filter allowed: 10.0.0.0/8`, `ip_filter default: deny`, ..."""
    explicit: bool
    """Whether an `allowed` or `denied` entry decided (not the default)."""


def address_key(ip: str) -> Key:
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


def readings(ip: str) -> tuple[Key, ...]:
    """Every address a connection to `ip` is judged as, the address itself first: the
    unspecified address (0.0.0.0, ::) also as the loopback address the kernel connects it to,
    and an IPv6 address embedding an IPv4 one (IPv4-compatible ::a.b.c.d other than :: and
    ::1, NAT64 64:ff9b::a.b.c.d, 6to4 2002:aabb:ccdd::) also as that IPv4 address, read the
    same way. ValueError for anything but an IP literal."""
    key = address_key(ip)
    version, value = key
    if value == 0:
        return key, _LOOPBACK[version]
    if version == 4:
        return (key,)
    high = value >> 32
    if (high == 0 and value != 1) or high == _NAT64:
        embedded = value & 0xFFFFFFFF
    elif value >> 112 == _6TO4:
        embedded = (value >> 80) & 0xFFFFFFFF
    else:
        return (key,)
    return (key, (4, embedded), _LOOPBACK[4]) if embedded == 0 else (key, (4, embedded))


def key_text(key: Key) -> str:
    """A key as an address, for messages."""
    version, value = key
    return str(ipaddress.IPv4Address(value) if version == 4 else ipaddress.IPv6Address(value))


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

    def lookup(self, key: Key) -> Rule:
        version, value = key
        for shift, prefixes in self._tables[version]:
            rule = prefixes.get(value >> shift)
            if rule is not None:
                return rule
        return self._default
