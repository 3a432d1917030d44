"""Email round trip: send a mail carrying a fresh token over SMTP, wait until it is in a mailbox.

The token (128 random bits) goes in an X-Sonde-Probe header, the Message-ID and the subject.
Receiving is shared per mailbox (mailbox.py), so many probes can wait on one POP3 mailbox.
Failures name the side and the step (smtp_auth, receive_connect, not_delivered, ...), and
probe_email_send_success tells "never sent" apart from "sent but never arrived".
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import ssl
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectResponseError,
    SMTPException,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
)

from ..config import EmailModule, SmtpSettings
from ..connect import connect
from ..probe_metrics import ProbeGauge
from ..resolve import resolve
from ..targets import EmailTarget, parse_email_target
from ..tls import record_tls_metrics
from .base import ProbeContext, ProbeFailure, Prober, Reason
from .mailbox import Delivery, mailbox_for
from .mailproto import PROBE_HEADER, now

EMAIL_PHASE = ProbeGauge(
    "probe_email_duration_seconds",
    "Duration of each phase of the email round trip in seconds (smtp_connect, smtp_tls, "
    "smtp_auth, smtp_send; receive_connect, receive_tls, receive_auth, receive_retrieve, "
    "receive_delete)",
    ("phase",),
)
EMAIL_DELIVERY = ProbeGauge(
    "probe_email_delivery_seconds",
    "Time from the SMTP server accepting the probe mail to the first mailbox poll that listed "
    "it, in seconds",
)
EMAIL_SENT = ProbeGauge(
    "probe_email_send_success",
    "Whether the SMTP server accepted the probe mail (1) or not (0)",
)
EMAIL_AUTH = ProbeGauge(
    "probe_email_auth_result",
    "Verdicts in the received mail's Authentication-Results header: 1 for the result of each "
    "method found (dkim, spf, dmarc)",
    ("method", "result"),
)
_QUIT_TIMEOUT = 1.0
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
    client = await _open_smtp(host, port, implicit_tls, module.smtp, ctx)
    mailbox = mailbox_for(module.receive, module.stale_after)
    try:
        with ctx.phase(EMAIL_PHASE, "smtp_send"), _smtp_errors(Reason.SMTP_ERROR):
            await client.mail(module.mail_from)
            await client.rcpt(module.to)
            await client.data(_message(module, token))
        accepted_at = now()
        ctx.metrics.set(EMAIL_SENT, 1)
        ctx.log.info("SMTP server accepted the probe mail", token=token)
        waiter = mailbox.add(token, module.delete, ctx.deadline, ctx.log)
    except BaseException:
        _discard(client)
        raise
    try:
        with contextlib.suppress(SMTPException, OSError, TimeoutError):
            async with asyncio.timeout(_QUIT_TIMEOUT):  # the mail is in; QUIT is courtesy
                await client.quit()
        _discard(client)
        ctx.log.debug("Waiting for the probe mail", mailbox=module.receive.url)
        ctx.timeout_reason = Reason.NOT_DELIVERED
        try:
            delivery = await waiter.future
        except asyncio.CancelledError:
            ctx.timeout_reason = mailbox.timeout_reason(waiter)
            raise
    finally:
        mailbox.remove(waiter)
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


async def _open_smtp(
    host: str, port: int, implicit_tls: bool, smtp: SmtpSettings, ctx: ProbeContext
) -> aiosmtplib.SMTP:
    """Resolve, connect, greet, TLS, authenticate: a client ready for MAIL FROM."""
    address = await resolve(host, "ip4", True, ctx)
    server_name = smtp.tls_config.server_name or ctx.hostname or host
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    sock.setblocking(False)
    client = aiosmtplib.SMTP(
        hostname=server_name,
        local_hostname=smtp.ehlo_name,
        timeout=None,  # the handler's deadline bounds every step
        use_tls=implicit_tls,
        start_tls=False,
        tls_context=smtp.tls_config.context,
        sock=sock,
    )
    try:
        with ctx.phase(EMAIL_PHASE, "smtp_connect", Reason.SMTP_CONNECT):
            ctx.log.debug("Dialing SMTP server", address=address.ip, port=port)
            await _connect(sock, address.ip, port)
            if not implicit_tls:
                with _smtp_errors(Reason.SMTP_CONNECT):
                    await client.connect()
                    await client.ehlo()
        if implicit_tls:
            with ctx.phase(EMAIL_PHASE, "smtp_tls", Reason.SMTP_TLS), _smtp_errors(Reason.SMTP_TLS):
                await client.connect()
                await client.ehlo()
            record_tls_metrics(ctx.metrics, client.get_transport_info("ssl_object"))
        elif smtp.starttls == "always" or (
            smtp.starttls == "opportunistic" and client.supports_extension("starttls")
        ):
            with ctx.phase(EMAIL_PHASE, "smtp_tls", Reason.SMTP_TLS), _smtp_errors(Reason.SMTP_TLS):
                if not client.supports_extension("starttls"):
                    raise ProbeFailure(Reason.SMTP_TLS, "the server does not offer STARTTLS")
                await client.starttls(server_hostname=server_name)
                await client.ehlo()
            record_tls_metrics(ctx.metrics, client.get_transport_info("ssl_object"))
        if smtp.username:
            with (
                ctx.phase(EMAIL_PHASE, "smtp_auth", Reason.SMTP_AUTH),
                _smtp_errors(Reason.SMTP_AUTH),
            ):
                await _login(client, smtp)
            ctx.log.debug("Authenticated", username=smtp.username)
    except BaseException:
        _discard(client)
        sock.close()  # safe: an aborted transport no longer watches the descriptor
        raise
    return client


def _discard(client: aiosmtplib.SMTP) -> None:
    """Drop a session at once. A graceful close would keep the socket open for the TLS
    close_notify exchange, long after the probe (and maybe the server) gave up on it."""
    if isinstance(client.transport, asyncio.WriteTransport):
        client.transport.abort()
    client.close()


async def _connect(sock: socket.socket, ip: str, port: int) -> None:
    try:
        await connect(sock, ip, port)
    except ProbeFailure as failure:
        raise ProbeFailure(Reason.SMTP_CONNECT, failure.message) from None


async def _login(client: aiosmtplib.SMTP, smtp: SmtpSettings) -> None:
    """AUTH PLAIN, else LOGIN: one attempt, so a wrong password costs one server delay."""
    if not client.supports_extension("auth"):
        tls = client.get_transport_info("sslcontext") is not None
        raise ProbeFailure(
            Reason.SMTP_AUTH,
            "the server does not offer AUTH" + ("" if tls else " before TLS (set starttls)"),
        )
    methods = client.server_auth_methods
    secret = smtp.secret or ""
    if "plain" in methods:
        await client.auth_plain(smtp.username, secret)
    elif "login" in methods:
        await client.auth_login(smtp.username, secret)
    else:
        raise ProbeFailure(
            Reason.SMTP_AUTH,
            f"the server offers no AUTH mechanism this prober has: {' '.join(methods)}",
        )


@contextlib.contextmanager
def _smtp_errors(step: Reason) -> Iterator[None]:
    """Turn aiosmtplib and TLS errors into a ProbeFailure naming the SMTP step that failed."""
    try:
        yield
    except (SMTPException, ssl.SSLError, OSError) as exc:
        raise _smtp_failure(exc, step) from None


def _smtp_failure(exc: BaseException, step: Reason) -> ProbeFailure:
    cause = exc.__cause__ or exc.__context__
    for error in (exc, cause):
        if isinstance(error, ssl.SSLCertVerificationError):
            return ProbeFailure(
                Reason.SMTP_TLS, f"certificate verification failed: {error.verify_message}"
            )
        if isinstance(error, ssl.SSLError):
            return ProbeFailure(Reason.SMTP_TLS, f"TLS handshake failed: {error.reason or error}")
    if isinstance(exc, SMTPAuthenticationError):
        return ProbeFailure(Reason.SMTP_AUTH, f"authentication failed: {_reply(exc)}")
    if isinstance(exc, SMTPConnectResponseError):
        return ProbeFailure(Reason.SMTP_REJECTED, f"greeting: {_reply(exc)}")
    if isinstance(exc, SMTPRecipientsRefused) and exc.recipients:
        return ProbeFailure(Reason.SMTP_REJECTED, f"recipient refused: {_reply(exc.recipients[0])}")
    if isinstance(exc, SMTPResponseException):
        reason = Reason.SMTP_AUTH if step is Reason.SMTP_AUTH else Reason.SMTP_REJECTED
        if step is Reason.SMTP_TLS:
            reason = Reason.SMTP_TLS
        return ProbeFailure(reason, f"the server said {_reply(exc)}")
    if isinstance(exc, SMTPServerDisconnected):
        return ProbeFailure(Reason.SMTP_ERROR, "the server closed the connection")
    if step is Reason.SMTP_CONNECT:
        return ProbeFailure(step, str(exc)[:200])
    return ProbeFailure(Reason.SMTP_ERROR, str(exc)[:200] or type(exc).__name__)


def _reply(exc: SMTPResponseException) -> str:
    return f"{exc.code} {' '.join(exc.message.split())}"[:300]


PROBER = Prober(parse_target=parse_email_target, probe=probe_email, accepts_empty_target=True)
