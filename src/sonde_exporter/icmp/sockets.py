"""Which ICMP sockets this process may open, opening them, and the one registry of them.

Why datagram first: unprivileged datagram ICMP sockets (allowed by net.ipv4.ping_group_range)
need no privilege and the kernel demultiplexes their replies; without them one raw socket
per family is used (root or CAP_NET_RAW). The mode is detected once per family, and each
socket is opened once and shared by every probe until exit.
"""

from __future__ import annotations

import atexit
import errno
import logging
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from ..logs import fields
from . import linux
from .endpoint import Endpoint, SocketMode
from .time_exceeded import set_filter

logger = logging.getLogger("sonde_exporter.icmp")

FAMILY_NAMES = {socket.AF_INET: "ip4", socket.AF_INET6: "ip6"}
_PROTO = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
_KIND = {SocketMode.DATAGRAM: socket.SOCK_DGRAM, SocketMode.RAW: socket.SOCK_RAW}
_BUFFER_BYTES = 4 << 20
_PERMISSION_ERRNOS = (errno.EACCES, errno.EPERM)


class IcmpUnavailable(Exception):
    """No ICMP socket for this family; `permission` tells a missing privilege from the rest."""

    def __init__(self, message: str, permission: bool) -> None:
        super().__init__(message)
        self.message = message
        self.permission = permission


@dataclass(frozen=True, slots=True)
class FamilySupport:
    """What this process may open for one family: a mode, or NONE and why not."""

    family: socket.AddressFamily
    mode: SocketMode
    problem: str = ""
    permission: bool = False


def _read_ping_group_range() -> str:
    try:
        with open("/proc/sys/net/ipv4/ping_group_range", encoding="utf-8") as f:
            return " ".join(f.read().split())
    except OSError:
        return "unknown"


def grant_message() -> str:
    """Exactly what this process lacks for ICMP, and how to grant it."""
    gid = os.getegid()
    return (
        f"no permission to open ICMP sockets: unprivileged datagram ICMP needs group {gid} "
        f'inside net.ipv4.ping_group_range (now "{_read_ping_group_range()}"; grant with '
        f'sysctl -w net.ipv4.ping_group_range="{gid} {gid}"), and raw ICMP needs the '
        "CAP_NET_RAW capability (e.g. AmbientCapabilities=CAP_NET_RAW in a systemd unit, "
        "--cap-add=NET_RAW for a container, or setcap cap_net_raw+ep on "
        f"{os.path.realpath(sys.executable)}); restart the exporter after granting either"
    )


def _detect(family: socket.AddressFamily) -> FamilySupport:
    errors: list[OSError] = []
    for mode, kind in _KIND.items():
        try:
            socket.socket(family, kind, _PROTO[family]).close()
        except OSError as exc:
            errors.append(exc)
        else:
            return FamilySupport(family, mode)
    if all(exc.errno in _PERMISSION_ERRNOS for exc in errors):
        return FamilySupport(family, SocketMode.NONE, grant_message(), permission=True)
    detail = "; ".join(f"{m}: {e.strerror or e}" for m, e in zip(_KIND, errors, strict=True))
    return FamilySupport(
        family,
        SocketMode.NONE,
        f"{FAMILY_NAMES[family]} ICMP sockets are not available ({detail})",
    )


def _open(family: socket.AddressFamily, mode: SocketMode, source: str | None) -> socket.socket:
    sock = socket.socket(family, _KIND[mode], _PROTO[family])
    try:
        sock.setblocking(False)
        _set_buffer(sock, socket.SO_RCVBUF, linux.SO_RCVBUFFORCE)
        _set_buffer(sock, socket.SO_SNDBUF, linux.SO_SNDBUFFORCE)
        sock.setsockopt(socket.SOL_SOCKET, linux.SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.SOL_SOCKET, linux.SO_RXQ_OVFL, 1)
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, linux.IP_RECVTTL, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        if mode is SocketMode.RAW:
            set_filter(sock, family, time_exceeded=False)
        else:
            sock.bind((source or ("::" if family == socket.AF_INET6 else "0.0.0.0"), 0))
    except BaseException:
        sock.close()
        raise
    return sock


def _set_buffer(sock: socket.socket, option: int, force: int) -> None:
    """A large buffer absorbs bursts of replies; beyond net.core.*mem_max needs privilege."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, force, _BUFFER_BYTES)
    except PermissionError:
        sock.setsockopt(socket.SOL_SOCKET, option, _BUFFER_BYTES)


class IcmpSockets:
    """The process's ICMP sockets: the mode detected once per family, each socket opened once."""

    def __init__(self) -> None:
        self._support: dict[socket.AddressFamily, FamilySupport] = {}
        self._endpoints: dict[tuple[socket.AddressFamily, str | None], Endpoint] = {}

    def support(self, family: socket.AddressFamily) -> FamilySupport:
        """Which socket type this process may open for `family`; detected and logged once."""
        known = self._support.get(family)
        if known is None:
            known = self._support[family] = _detect(family)
            name = FAMILY_NAMES[family]
            if known.mode is SocketMode.NONE:
                logger.warning(
                    "ICMP probes cannot run", extra=fields(ip_protocol=name, err=known.problem)
                )
            else:
                logger.info(
                    "ICMP socket mode", extra=fields(ip_protocol=name, mode=known.mode.value)
                )
        return known

    def endpoint(self, family: socket.AddressFamily, source: str | None = None) -> Endpoint:
        """The shared socket for `family`, opened on first use; IcmpUnavailable if none.

        Every probe of a family shares one socket and picks its source address per packet.
        The exception: Linux ignores the source of IPv6 datagram ICMP sockets' IPV6_PKTINFO,
        so there each source_ip_address gets its own bound (and equally shared) socket;
        the kernel demultiplexes datagram sockets, so that costs no packet copies.
        """
        support = self.support(family)
        mode = support.mode
        bind = source if mode is SocketMode.DATAGRAM and family == socket.AF_INET6 else None
        endpoint = self._endpoints.get((family, bind))
        if endpoint is not None:
            return endpoint
        if mode is SocketMode.NONE:
            raise IcmpUnavailable(support.problem, support.permission)
        try:
            sock = _open(family, mode, bind)
        except OSError as exc:
            where = f" bound to {bind}" if bind else ""
            raise IcmpUnavailable(
                f"cannot open the {mode} ICMP socket{where}: {exc.strerror or exc}",
                exc.errno in _PERMISSION_ERRNOS,
            ) from None
        endpoint = self._endpoints[(family, bind)] = Endpoint(family, mode, sock, bind)
        logger.debug(
            "Opened shared ICMP socket",
            extra=fields(
                ip_protocol=FAMILY_NAMES[family],
                mode=mode.value,
                source=bind or "any",
                receive_buffer=sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
            ),
        )
        return endpoint

    def endpoints(self) -> Iterator[Endpoint]:
        return iter(list(self._endpoints.values()))

    def close(self) -> None:
        """Close the sockets (at exit, and in tests); the next probe reopens them."""
        for endpoint in self._endpoints.values():
            endpoint.close()
        self._endpoints.clear()


SOCKETS = IcmpSockets()
atexit.register(SOCKETS.close)
