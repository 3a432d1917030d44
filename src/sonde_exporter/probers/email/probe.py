"""Email round trip: send a mail carrying a fresh token over SMTP, wait until it is in a mailbox.

The token (128 random bits) goes in an X-Sonde-Probe header, the Message-ID and the subject.
Receiving is shared per mailbox (poller.py), so many probes can wait on one POP3 mailbox.
Failures name the side and the step (smtp_auth, receive_connect, not_delivered, ...), and
probe_email_send_success tells "never sent" apart from "sent but never arrived".
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime

from ...config import EmailModule
from ...prober_base import ProbeContext, ProbeFailure, Prober, Reason
from ...targets import EmailTarget, parse_email_target
from . import smtp
from .gauges import EMAIL_AUTH, EMAIL_DELIVERY, EMAIL_PHASE, EMAIL_SENT
from .headers import PROBE_HEADER
from .poller import Delivery, poller_for
from .session import now

BODY = (
    "This mail was sent by sonde-exporter to measure mail delivery.\n"
    "It is deleted automatically when it arrives; it is safe to delete it by hand.\n"
)


async def probe_email(target: EmailTarget, module: EmailModule, ctx: ProbeContext) -> None:
    ctx.metrics.set(EMAIL_SENT, 0)
    # Fail before any network traffic: no mail is sent that could never be picked up.
    for server, reason in ((module.smtp, Reason.SMTP_AUTH), (module.receive, Reason.RECEIVE_AUTH)):
        missing = server.missing_password()
        if missing is not None:
            raise ProbeFailure(reason, missing)
    token = secrets.token_hex(16)
    url = module.smtp.parsed_url
    host = target.host or url.host
    port = target.port or url.port
    implicit_tls = url.implicit_tls if target.implicit_tls is None else target.implicit_tls
    ctx.log.info(
        "Sending probe mail",
        server=f"{'smtps' if implicit_tls else 'smtp'}://{host}:{port}",
        token=token,
    )
    client = await smtp.open_client(host, port, implicit_tls, module, ctx)
    poller = poller_for(module)
    try:
        with ctx.phase(EMAIL_PHASE, "smtp_send"):
            await smtp.send(client, module, _message(module, token))
        accepted_at = now()
        ctx.metrics.set(EMAIL_SENT, 1)
        ctx.log.info("SMTP server accepted the probe mail", token=token)
        waiter = poller.add(token, module.delete, ctx.deadline, ctx.log)
    except BaseException:
        smtp.discard(client)
        raise
    try:
        await smtp.quit_and_discard(client)
        ctx.log.debug("Waiting for the probe mail", receive=module.receive.url)
        ctx.timeout_reason = Reason.NOT_DELIVERED
        try:
            delivery = await waiter.future
        except asyncio.CancelledError:
            ctx.timeout_reason = poller.timeout_reason(waiter)
            raise
    finally:
        poller.remove(waiter)
    _record_delivery(delivery, accepted_at, ctx)


def _record_delivery(delivery: Delivery, accepted_at: float, ctx: ProbeContext) -> None:
    elapsed = max(0.0, delivery.seen_at - accepted_at)
    ctx.metrics.set(EMAIL_DELIVERY, elapsed)
    ctx.observe(response_time=elapsed, delivery_time=elapsed)
    for phase, seconds in delivery.phases.items():
        ctx.metrics.set(EMAIL_PHASE, seconds, f"receive_{phase}")
    for method, result in delivery.auth:
        ctx.metrics.set(EMAIL_AUTH, 1, method, result)
    ctx.log.info(
        "Probe mail received",
        delivery_seconds=round(elapsed, 6),
        **{f"auth_{method}": result for method, result in delivery.auth},
    )


def _message(module: EmailModule, token: str) -> bytes:
    domain = module.mail_from.rpartition("@")[2]
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = module.mail_from
    message["To"] = module.to
    message["Subject"] = f"{module.subject_prefix} {token}".strip()
    message["Date"] = format_datetime(datetime.now().astimezone())
    message["Message-ID"] = f"<{token}.sonde@{domain}>"
    message[PROBE_HEADER] = token
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to probes
    message.set_content(BODY)
    return message.as_bytes()


PROBER = Prober(parse_target=parse_email_target, probe=probe_email, accepts_empty_target=True)
