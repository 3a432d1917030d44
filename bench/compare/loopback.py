"""Loopback only: every address a bench process listens on, connects to, or asks an exporter
to probe is checked here, so that no load ever leaves the machine."""

from __future__ import annotations

import ipaddress
import urllib.parse


def loopback_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The IP literal `host` (brackets allowed), or ValueError if it is not loopback.

    Names are refused, "localhost" too: what a name resolves to is not ours to check."""
    address = ipaddress.ip_address(host.strip("[]"))
    if not address.is_loopback:
        raise ValueError(f"refusing non-loopback address {host!r}")
    return address


def target_host(target: str) -> str:
    """The host part of "host:port", "[v6]:port", "[v6]" or a bare host."""
    if target.startswith("["):
        return target[1 : target.index("]")]
    host, sep, port = target.rpartition(":")
    return host if sep and ":" not in host and port.isdigit() else target


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_probe_url(url: str) -> None:
    """ValueError unless the exporter and every `target=` of the URL are loopback."""
    parts = urllib.parse.urlsplit(url)
    loopback_address(parts.hostname or "")
    targets = urllib.parse.parse_qs(parts.query).get("target", [])
    if not targets:
        raise ValueError(f"no target= in {url!r}")
    for target in targets:
        loopback_address(target_host(target))
