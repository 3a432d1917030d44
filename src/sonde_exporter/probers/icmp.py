"""ICMP prober: `count` echo requests `interval` apart, with loss, RTT statistics and jitter.

blackbox_exporter sends one echo per probe; users asked for loss and jitter many times. The
requests go out on the process's shared ICMP socket (the icmp package), whose kernel receive
timestamps keep RTTs honest when the event loop is busy.

A request counts as lost when its reply has not arrived by the end of the probe: the
deadline minus a small grace, so the prober itself reports the loss instead of being
cancelled. The probe succeeds when at least one reply arrived, or, with
max_packet_loss_ratio set, when the loss ratio is at most that.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import math
import socket

from ..config import IcmpModule
from ..config.icmp import echo_grace
from ..icmp.endpoint import EchoExchange, Endpoint
from ..icmp.packets import SendOptions, send_options
from ..icmp.sockets import SOCKETS, IcmpUnavailable
from ..probe_metrics import ProbeGauge
from ..prober_base import ProbeContext, ProbeFailure, Prober, Reason
from ..resolve import resolve
from ..targets import parse_host

ICMP_PHASE = ProbeGauge(
    "probe_icmp_duration_seconds",
    "Duration of the ICMP probe by phase (resolve, setup, rtt = mean of the replies) in seconds",
    ("phase",),
)
REPLY_HOP_LIMIT = ProbeGauge(
    "probe_icmp_reply_hop_limit",
    "Hop limit (TTL for IPv4) of the reply to the last answered echo request",
)
PACKETS_SENT = ProbeGauge("probe_icmp_packets_sent", "Echo requests sent by this probe")
PACKETS_RECEIVED = ProbeGauge(
    "probe_icmp_packets_received", "Echo requests answered by a reply (duplicates not counted)"
)
LOSS_RATIO = ProbeGauge(
    "probe_icmp_packet_loss_ratio", "Share of the sent echo requests that got no reply (0 to 1)"
)
DUPLICATES = ProbeGauge(
    "probe_icmp_duplicate_replies", "Replies beyond the first one to the same echo request"
)
RTT = ProbeGauge(
    "probe_icmp_rtt_seconds",
    "Round-trip time over the replies of this probe: min, avg, max and stddev (population), "
    "in seconds",
    ("stat",),
)
JITTER = ProbeGauge(
    "probe_icmp_jitter_seconds",
    "Mean absolute difference between the round-trip times of consecutive replies in seconds",
)


async def probe_icmp(target: str, module: IcmpModule, ctx: ProbeContext) -> None:
    for phase in ("resolve", "setup", "rtt"):  # blackbox_exporter always shows all three
        ctx.metrics.set(ICMP_PHASE, 0, phase)
    for gauge in (PACKETS_SENT, PACKETS_RECEIVED, DUPLICATES):  # a probe that fails early sent 0
        ctx.metrics.set(gauge, 0)
    with ctx.phase(ICMP_PHASE, "resolve"):
        address = await resolve(target, module, ctx)
    with ctx.phase(ICMP_PHASE, "setup"):
        _check_source(address.family, module.source_ip_address)
        endpoint = _endpoint(address.family, module.source_ip_address)
        options, toggle_df = send_options(
            address.family,
            module.ttl,
            None if endpoint.bound_source else module.source_ip_address,
            module.dont_fragment,
        )
        exchange = endpoint.exchange(address.ip, module.count, module.payload_size)
    ctx.log.debug(
        "Sending echo requests",
        socket_mode=endpoint.mode.value,
        address=address.ip,
        ident=exchange.ident,
        count=module.count,
        interval_seconds=module.interval,
        payload_size=module.payload_size,
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    stop_at = ctx.deadline - echo_grace(ctx.deadline - start)
    with exchange:
        try:
            if not module.fits(ctx.deadline - start):
                raise ProbeFailure(
                    Reason.TIMEOUT,
                    f"the probe timeout ({ctx.deadline - start:.3g}s) is too short to send "
                    f"{module.count} echo requests {module.interval:g}s apart; raise the "
                    "timeout or lower count or interval",
                )
            await _send_all(exchange, address.ip, module, options, toggle_df, start)
            await exchange.wait(stop_at)
        finally:
            _record(exchange, ctx)
    _judge(exchange, address.ip, module)


def _endpoint(family: socket.AddressFamily, source: str | None) -> Endpoint:
    try:
        return SOCKETS.endpoint(family, source)
    except IcmpUnavailable as exc:
        reason = Reason.ICMP_PERMISSION if exc.permission else Reason.IO_ERROR
        raise ProbeFailure(reason, exc.message) from None


def _check_source(family: socket.AddressFamily, source: str | None) -> None:
    if source is not None and (":" in source) != (family == socket.AF_INET6):
        raise ProbeFailure(
            Reason.IO_ERROR,
            f"source_ip_address {source} is not of the target's IP version "
            f"(IPv{6 if family == socket.AF_INET6 else 4})",
        )


async def _send_all(
    exchange: EchoExchange,
    ip: str,
    module: IcmpModule,
    options: SendOptions,
    toggle_df: bool,
    start: float,
) -> None:
    loop = asyncio.get_running_loop()
    destination = (ip, 0)
    for index in range(module.count):
        if index:
            await asyncio.sleep(max(0.0, start + index * module.interval - loop.time()))
        try:
            await exchange.send(index, destination, options, toggle_df)
        except OSError as exc:
            hint = ""
            if module.source_ip_address is not None and exc.errno in (
                errno.EINVAL,
                errno.EADDRNOTAVAIL,
            ):
                hint = (
                    f" (is source_ip_address {module.source_ip_address} an address of this host?)"
                )
            raise ProbeFailure(
                Reason.IO_ERROR,
                f"cannot send echo request {index + 1} of {module.count} to {ip}: "
                f"{exc.strerror or exc}{hint}",
            ) from None


def _record(exchange: EchoExchange, ctx: ProbeContext) -> None:
    """Set the packet counts and RTT statistics; runs even when the probe is cut short."""
    metrics = ctx.metrics
    sent, received = exchange.sent, exchange.received
    metrics.set(PACKETS_SENT, sent)
    metrics.set(PACKETS_RECEIVED, received)
    ctx.observe(packets_sent=sent, packets_received=received)  # a monitor's result shows them
    metrics.set(DUPLICATES, exchange.duplicates)
    if sent:
        metrics.set(LOSS_RATIO, (sent - received) / sent)
    rtts = [ns / 1e9 for ns in exchange.rtt_ns if ns is not None]
    for index, seq in enumerate(exchange.seqs):
        rtt_ns = exchange.rtt_ns[index]
        if seq is None:
            continue
        if rtt_ns is None:
            ctx.log.debug("No echo reply", seq=seq)
        else:
            ctx.log.debug(
                "Echo reply",
                seq=seq,
                rtt_seconds=rtt_ns / 1e9,
                hop_limit=exchange.hop_limits[index],
            )
    if exchange.duplicates:
        ctx.log.debug("Duplicate echo replies", count=exchange.duplicates)
    if exchange.clock_fallbacks:
        ctx.log.warn(
            "Wall clock stepped during the probe; used monotonic RTTs",
            replies=exchange.clock_fallbacks,
        )
    if not rtts:
        return
    mean = sum(rtts) / len(rtts)
    ctx.observe(
        response_time=mean,
        rtt_min=min(rtts),
        rtt_avg=mean,
        rtt_max=max(rtts),
        packet_loss=(sent - received) / sent,
    )
    metrics.set(ICMP_PHASE, mean, "rtt")
    metrics.set(RTT, min(rtts), "min")
    metrics.set(RTT, mean, "avg")
    metrics.set(RTT, max(rtts), "max")
    metrics.set(RTT, math.sqrt(sum((r - mean) ** 2 for r in rtts) / len(rtts)), "stddev")
    if len(rtts) > 1:
        jitter = sum(abs(b - a) for a, b in itertools.pairwise(rtts)) / (len(rtts) - 1)
        metrics.set(JITTER, jitter)
        ctx.observe(jitter=jitter)
    hop = next((h for h in reversed(exchange.hop_limits) if h is not None), None)
    if hop is not None:
        metrics.set(REPLY_HOP_LIMIT, hop)


def _judge(exchange: EchoExchange, ip: str, module: IcmpModule) -> None:
    sent, received = exchange.sent, exchange.received
    if sent == 0:  # only reachable if sending stopped without an error; never "0 % loss"
        raise ProbeFailure(Reason.IO_ERROR, f"no echo request could be sent to {ip}")
    if received == 0:
        raise ProbeFailure(Reason.TIMEOUT, f"no reply from {ip} to any of {sent} echo requests")
    limit = module.max_packet_loss_ratio
    loss = (sent - received) / sent
    if limit is not None and loss > limit:
        raise ProbeFailure(
            Reason.PACKET_LOSS,
            f"{sent - received} of {sent} echo requests to {ip} got no reply: loss ratio "
            f"{loss:g} is above max_packet_loss_ratio {limit:g}",
        )


PROBER = Prober(parse_target=parse_host, probe=probe_icmp)
