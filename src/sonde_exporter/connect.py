"""Connecting a probe's socket, shared by the probers that open TCP connections.

Failures are ProbeFailure with connect_refused, connect_timeout or connect_error; a prober
that names its failures by side (email: smtp_connect) re-raises them with its own reason.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket

from .prober_base import ProbeFailure, Reason

_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY, errno.EINTR)
"""connect() results that mean "under way", as asyncio treats them."""


def bind_source(sock: socket.socket, source: str) -> None:
    try:
        sock.bind((source, 0))
    except OSError as exc:
        raise ProbeFailure(
            Reason.CONNECT_ERROR, f"cannot bind source_ip_address {source}: {exc.strerror}"
        ) from None


async def connect(sock: socket.socket, ip: str, port: int) -> None:
    """Connect the non-blocking socket, failing with connect_refused, _timeout or _error.

    Not loop.sock_connect: when the handshake completes inside connect() (loopback, often a
    LAN) the socket is connected on return, and asyncio's writer registration, loop pass and
    callbacks would cost more than the connect itself. Otherwise one writer waits for it.
    """
    try:
        err = sock.connect_ex((ip, port))
    except OSError as exc:  # before any packet: e.g. an IPv6 scope that names no interface
        raise ProbeFailure(
            Reason.CONNECT_ERROR, f"cannot connect to {ip} port {port}: {exc.strerror or exc}"
        ) from None
    if err in _IN_PROGRESS:
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if not err and not _connected(sock):
            await _writable(asyncio.get_running_loop(), sock.fileno())
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if not err and not _connected(sock):  # writable without a connection or an error
                err = errno.ENOTCONN
    if err == errno.ECONNREFUSED:
        raise ProbeFailure(Reason.CONNECT_REFUSED, f"connection to {ip} port {port} refused")
    if err == errno.ETIMEDOUT:  # the kernel gave up retrying the SYN
        raise ProbeFailure(Reason.CONNECT_TIMEOUT, f"connection to {ip} port {port} timed out")
    if err:
        raise ProbeFailure(
            Reason.CONNECT_ERROR, f"cannot connect to {ip} port {port}: {os.strerror(err)}"
        )


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:  # ENOTCONN: the handshake is still in progress
        return False
    return True


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    """Wait until fd is writable; the writer is removed however the wait ends (timeout too)."""
    waiter = loop.create_future()
    loop.add_writer(fd, _wake, waiter)
    try:
        await waiter
    finally:
        loop.remove_writer(fd)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
