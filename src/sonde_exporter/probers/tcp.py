"""TCP prober: connect, optional TLS, then an optional expect/send dialogue.

Compared with blackbox_exporter it adds per-phase timings and the kernel's own round-trip
measure of the handshake (TCP_INFO), which event-loop delay cannot inflate.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import struct
import time
from collections.abc import Awaitable
from typing import TypeVar

from ..config import QueryStep, TcpModule
from ..connect import bind_source, connect
from ..probe_metrics import ProbeGauge
from ..prober_base import ProbeContext, ProbeFailure, Prober, Reason
from ..regex import Match, Pattern
from ..resolve import resolve
from ..targets import HostPort, parse_host_port
from ..tls import describe_tls_error, error_text, record_tls_metrics

TCP_PHASE = ProbeGauge(
    "probe_tcp_duration_seconds",
    "Duration of each phase of the TCP probe (resolve, connect, tls, query) in seconds",
    ("phase",),
)
TCP_RTT = ProbeGauge(
    "probe_tcp_rtt_seconds",
    "Round-trip time of the TCP handshake as measured by the kernel (TCP_INFO) in seconds",
)
FAILED_DUE_TO_REGEX = ProbeGauge(
    "probe_failed_due_to_regex", "Indicates if probe failed due to regex"
)
FAILED_DUE_TO_BYTES = ProbeGauge(
    "probe_failed_due_to_bytes", "Indicates if probe failed due to expect_bytes"
)

# struct tcp_info: tcpi_rtt (microseconds) sits at byte offset 68 on Linux.
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_RTT_OFFSET = 68
_MAX_LINE = 64 * 1024
_LOGGED_LINE = 256

_T = TypeVar("_T")


async def probe_tcp(target: HostPort, module: TcpModule, ctx: ProbeContext) -> None:
    ctx.metrics.set(FAILED_DUE_TO_REGEX, 0)
    ctx.metrics.set(FAILED_DUE_TO_BYTES, 0)
    with ctx.phase(TCP_PHASE, "resolve", Reason.DNS):
        address = await resolve(target.host, module, ctx, port=target.port)
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    started = time.perf_counter()
    try:
        sock.setblocking(False)
        if module.source_ip_address is not None:
            bind_source(sock, module.source_ip_address)
        ctx.log.debug("Dialing TCP", address=address.ip, port=target.port)
        with ctx.phase(TCP_PHASE, "connect", Reason.CONNECT_TIMEOUT):
            await connect(sock, address.ip, target.port)
        _record_rtt(sock, ctx)
        ctx.log.debug("Successfully dialed")
        if not module.tls and not module.query_response:
            return
        server_name = module.tls_config.server_name or ctx.hostname or target.host
        if module.tls:
            ctx.log.debug("Starting TLS", server_name=server_name)
            with ctx.phase(TCP_PHASE, "tls", Reason.TLS_HANDSHAKE):
                reader, writer = await _handshake(
                    asyncio.open_connection(
                        sock=sock,
                        ssl=module.tls_config.context,
                        server_hostname=server_name,
                        limit=_MAX_LINE,
                    )
                )
        else:
            reader, writer = await asyncio.open_connection(sock=sock, limit=_MAX_LINE)
        try:
            if module.tls:
                _tls_done(writer, ctx)
            if module.query_response:
                with ctx.phase(TCP_PHASE, "query"):
                    await _dialogue(module, server_name, reader, writer, ctx)
        finally:
            writer.transport.abort()  # not close(): a graceful TLS close could outlive the probe
    finally:
        if ctx.observed is not None:  # only a module with policies judges it
            ctx.observe(response_time=time.perf_counter() - started)
        sock.close()  # a no-op when the stream transport already closed it


def _record_rtt(sock: socket.socket, ctx: ProbeContext) -> None:
    if _TCP_INFO is None:
        return
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _RTT_OFFSET + 4)
    except OSError:
        return
    if len(info) >= _RTT_OFFSET + 4:
        (rtt_us,) = struct.unpack_from("I", info, _RTT_OFFSET)
        ctx.metrics.set(TCP_RTT, rtt_us / 1e6)


async def _handshake(opening: Awaitable[_T]) -> _T:
    """Await a TLS handshake, turning its errors into tls_verify or tls_handshake failures."""
    try:
        return await opening
    except OSError as exc:  # ssl.SSLError, or the connection reset or closed mid-handshake
        verify = isinstance(exc, ssl.SSLCertVerificationError)
        reason = Reason.TLS_VERIFY if verify else Reason.TLS_HANDSHAKE
        raise ProbeFailure(reason, describe_tls_error(exc)) from None


def _tls_done(writer: asyncio.StreamWriter, ctx: ProbeContext) -> None:
    ssl_object = writer.get_extra_info("ssl_object")
    record_tls_metrics(ctx.metrics, ssl_object)
    ctx.log.debug("TLS handshake succeeded", version=ssl_object.version())


async def _dialogue(
    module: TcpModule,
    server_name: str,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ctx: ProbeContext,
) -> None:
    for index, step in enumerate(module.query_response):
        try:
            await _run_step(index, step, module, server_name, reader, writer, ctx)
        except ssl.SSLError as exc:  # e.g. a TLS 1.3 server rejecting the client certificate
            raise ProbeFailure(
                Reason.TLS_HANDSHAKE, f"query_response step {index}: TLS error: {error_text(exc)}"
            ) from None
        except OSError as exc:
            raise ProbeFailure(
                Reason.IO_ERROR, f"query_response step {index}: connection error: {error_text(exc)}"
            ) from None


async def _run_step(
    index: int,
    step: QueryStep,
    module: TcpModule,
    server_name: str,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    ctx: ProbeContext,
) -> None:
    match: Match | None = None
    if step.expect is not None:
        ctx.log.debug("Expecting", step=index, regexp=step.expect.text)
        match = await _expect_line(reader, step.expect, ctx)
        if match is None:
            ctx.metrics.set(FAILED_DUE_TO_REGEX, 1)
            raise ProbeFailure(
                Reason.EXPECT_MISMATCH,
                f"query_response step {index}: connection closed before a line matched "
                f"{step.expect.text!r}",
            )
    wanted = step.expect_bytes_raw
    if wanted is not None:
        try:
            got = await reader.readexactly(len(wanted))
        except asyncio.IncompleteReadError as exc:
            got = exc.partial
        ctx.record_read(got)
        if got != wanted:
            ctx.metrics.set(FAILED_DUE_TO_BYTES, 1)
            raise ProbeFailure(
                Reason.EXPECT_MISMATCH,
                f"query_response step {index}: expected bytes {wanted!r}, got {got!r}",
            )
    if step.labels:
        names = tuple(label.name for label in step.labels)
        values = tuple(
            _expand(label.value.encode(), match).decode(errors="replace") for label in step.labels
        )
        ctx.metrics.set(_expect_info(names), 1, *values)
    send = step.send_raw
    if send is not None:
        ctx.log.debug("Sending line", step=index)
        writer.write(_expand(send, match) + b"\n")
        await writer.drain()
    if step.starttls:
        ctx.log.debug("Starting TLS", step=index, server_name=server_name)
        with ctx.phase(TCP_PHASE, "tls", Reason.TLS_HANDSHAKE):
            await _handshake(
                writer.start_tls(module.tls_config.context, server_hostname=server_name)
            )
        _tls_done(writer, ctx)


async def _expect_line(
    reader: asyncio.StreamReader, pattern: Pattern, ctx: ProbeContext
) -> Match | None:
    """Read lines until one matches; None when the peer closes first."""
    while True:
        try:
            line = await reader.readline()
        except ValueError:
            raise ProbeFailure(
                Reason.EXPECT_MISMATCH, f"peer sent a line longer than {_MAX_LINE} bytes"
            ) from None
        ctx.record_read(line)
        if not line:
            return None
        line = line.removesuffix(b"\n").removesuffix(b"\r")
        ctx.log.debug("Read line", line=line[:_LOGGED_LINE].decode(errors="replace"))
        match = pattern.search(line)
        if match is not None:
            return match


@functools.cache
def _expect_info(label_names: tuple[str, ...]) -> ProbeGauge:
    return ProbeGauge("probe_expect_info", "Explicit content matched", label_names)


def _expand(template: bytes, match: Match | None) -> bytes:
    """A send or label template with this step's groups; taken as it is without an expect."""
    return template if match is None else match.expand(template)


PROBER = Prober(parse_target=parse_host_port, probe=probe_tcp)
