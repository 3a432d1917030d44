"""A process-wide net under the house rule that tests talk to loopback only.

Installed for the whole pytest process (conftest.py) and in the fuzz test's exporter
(fuzz_netns_runner.py): name lookups other than localhost and loopback literals, and
connections or datagrams to any address but loopback, fail with an error that starts with
GUARD, at the socket, whichever way the code under test gets there. A test that aims at
another host fails instead of sending. It is a second wall, never the first: tests do not aim
at other hosts, and those that feed untrusted targets run the exporter in a network namespace
with only loopback.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

GUARD = "test guard:"
"""How every refusal starts, so a test can tell the guard's refusal from the kernel's."""

_INET = (socket.AF_INET, socket.AF_INET6)


def is_loopback(host: object) -> bool:
    """Loopback, the unspecified address (which the kernel routes to loopback), or a local
    wildcard lookup (no host)."""
    if host in (None, "", b""):
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(name.split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _lookup(original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(host: object, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(host):
            raise socket.gaierror(socket.EAI_NONAME, f"{GUARD} {host!r} is not loopback")
        return original(host, *args, **kwargs)

    return guarded


def _refuse(sock: socket.socket, address: Any) -> None:
    if sock.family in _INET and isinstance(address, tuple) and not is_loopback(address[0]):
        raise OSError(errno.ENETUNREACH, f"{GUARD} {address[0]} is not loopback")


def _connect(original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(self: socket.socket, address: Any) -> Any:
        _refuse(self, address)
        return original(self, address)

    return guarded


def _sendto(original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(self: socket.socket, *args: Any) -> Any:
        _refuse(self, args[-1])  # sendto(data, [flags,] address)
        return original(self, *args)

    return guarded


def _sendmsg(original: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(self: socket.socket, *args: Any) -> Any:
        if len(args) >= 4:  # sendmsg(buffers, ancdata, flags, address)
            _refuse(self, args[3])
        return original(self, *args)

    return guarded


_PATCHES: list[tuple[Any, str, Callable[[Callable[..., Any]], Callable[..., Any]]]] = [
    (socket, "getaddrinfo", _lookup),
    (socket.socket, "connect", _connect),
    (socket.socket, "connect_ex", _connect),
    (socket.socket, "sendto", _sendto),
    (socket.socket, "sendmsg", _sendmsg),
]


def install() -> None:
    """Guard this process for good (a script that runs untrusted targets)."""
    for owner, name, wrap in _PATCHES:
        setattr(owner, name, wrap(getattr(owner, name)))


@contextmanager
def installed() -> Iterator[None]:
    """Guard this process while the block runs."""
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in _PATCHES]
    install()
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)
