"""Address selection shared by the network probers, as blackbox_exporter's chooseProtocol.

One address is used per probe: the first of the preferred family, else (with fallback on)
the first of the other family. IP literals skip the resolver. The module's IP filter judges
that very address (one lookup: what is checked is what the prober connects to), and the port
before any lookup.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .ipfilter import TargetFilter
from .probe_metrics import DNS_LOOKUP_TIME, IP_ADDR_HASH, IP_PROTOCOL
from .prober_base import ProbeContext, ProbeFailure, Reason

if TYPE_CHECKING:
    from .config import AddressChoice

_FAMILY = {"ip4": socket.AF_INET, "ip6": socket.AF_INET6}


@dataclass(frozen=True, slots=True)
class Address:
    ip: str
    family: socket.AddressFamily

    @property
    def version(self) -> int:
        return 6 if self.family == socket.AF_INET6 else 4


async def resolve(
    host: str,
    choice: AddressChoice,
    ctx: ProbeContext,
    *,
    port: int | None = None,
    explicit: bool = False,
) -> Address:
    """Pick the address to probe; set the dns lookup time, ip protocol and address hash.

    Raise TargetForbidden when the module's filter refuses the port or the chosen address
    (`explicit`: only an `allowed` entry will do); ctx.address is then left unset.
    """
    target_filter = choice.target_filter
    if target_filter.ports:
        target_filter.check_port(port)
    want = _FAMILY[choice.preferred_ip_protocol]
    fallback = choice.ip_protocol_fallback
    ctx.metrics.set(IP_PROTOCOL, 0)  # as blackbox: present, and 0 until an address is chosen
    ctx.metrics.set(IP_ADDR_HASH, 0)
    start = time.perf_counter()
    try:
        address = _literal(host, want, fallback) or await _lookup(host, want, fallback)
    finally:
        ctx.metrics.set(DNS_LOOKUP_TIME, time.perf_counter() - start)
    if explicit or address.ip not in target_filter.passed:  # inline: the hot path's cost
        target_filter.check_address(address.ip, explicit=explicit)
    ctx.address = address.ip
    ctx.metrics.set(IP_PROTOCOL, address.version)
    ctx.metrics.set(IP_ADDR_HASH, ip_hash(address.ip))
    ctx.log.debug("Resolved target address", target=host, ip=address.ip)
    return address


async def choose_address(host: str, preferred: str, fallback: bool) -> Address:
    """resolve() without a probe's metrics, for connections made on behalf of several probes
    (the email prober's mailbox poller)."""
    want = _FAMILY[preferred]
    return _literal(host, want, fallback) or await _lookup(host, want, fallback)


async def check_target(
    target_filter: TargetFilter,
    host: str,
    port: int | None,
    *,
    preferred: str = "ip4",
    fallback: bool = True,
    explicit: bool = False,
) -> str:
    """Whether a probe of `host` (name or address) and `port` would be let through now:
    return the address it would connect to, or raise TargetForbidden naming the rule (or
    ProbeFailure with reason dns). For the management API, at a monitor's creation and update;
    each check of the monitor goes through resolve() again, since DNS answers change."""
    target_filter.check_port(port)
    address = await choose_address(host, preferred, fallback)
    target_filter.check_address(address.ip, explicit=explicit)
    return address.ip


def _literal(host: str, want: socket.AddressFamily, fallback: bool) -> Address | None:
    address = _parse_literal(host)
    if address is not None and address.family != want and not fallback:
        raise ProbeFailure(
            Reason.DNS,
            f"{host} is not an IPv{6 if want == socket.AF_INET6 else 4} address "
            "and ip_protocol_fallback is off",
        )
    return address


# Targets repeat on every scrape: parse each host string once (ipaddress costs µs per call).
@functools.lru_cache(maxsize=4096)
def _parse_literal(host: str) -> Address | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return Address(str(ip), socket.AF_INET6 if ip.version == 6 else socket.AF_INET)


@functools.lru_cache(maxsize=4096)
def ip_hash(ip: str) -> int:
    """probe_ip_addr_hash of an address, as blackbox_exporter computes it."""
    return fnv32a(ipaddress.ip_address(ip).packed)


async def _lookup(host: str, want: socket.AddressFamily, fallback: bool) -> Address:
    loop = asyncio.get_running_loop()
    family = socket.AF_UNSPEC if fallback else want
    try:
        infos = await loop.getaddrinfo(host, None, family=family, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ProbeFailure(Reason.DNS, f"cannot resolve {host!r}: {exc}") from None
    preferred = [info for info in infos if info[0] == want]
    chosen = preferred or infos
    if not chosen:
        raise ProbeFailure(Reason.DNS, f"{host!r} has no address of a usable family")
    family, _, _, _, sockaddr = chosen[0]
    return Address(str(sockaddr[0]), family)


def fnv32a(data: bytes) -> int:
    """FNV-1a, 32 bit: blackbox_exporter's probe_ip_addr_hash, so hashes compare across both."""
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value
