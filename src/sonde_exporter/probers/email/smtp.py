"""The SMTP side of an email probe: connect, TLS, AUTH and send, each failure named by step."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator

import aiosmtplib
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectResponseError,
    SMTPException,
    SMTPRecipientsRefused,
    SMTPResponseException,
    SMTPServerDisconnected,
)

from ...config import EmailModule, SmtpSettings
from ...connect import bind_source, connect
from ...prober_base import ProbeContext, ProbeFailure, Reason
from ...resolve import resolve
from ...tls import describe_tls_error, record_tls_metrics
from .gauges import EMAIL_PHASE

_QUIT_TIMEOUT = 1.0


async def open_client(
    host: str, port: int, implicit_tls: bool, module: EmailModule, ctx: ProbeContext
) -> aiosmtplib.SMTP:
    """Resolve, connect, greet, TLS, authenticate: a client ready for MAIL FROM."""
    smtp = module.smtp
    # The filter judges the SMTP server's address before any packet; where the target sends
    # the module's credentials to another server, only an `allowed` entry lets them go.
    explicit = module.credentials_at_stake(host)
    address = await resolve(host, module, ctx, port=port, explicit=explicit)
    server_name = smtp.tls_config.server_name or ctx.hostname or host
    tls_context = None
    if implicit_tls or smtp.uses_tls:
        try:  # built at load unless only this target's smtps:// asks for TLS
            tls_context = smtp.tls_config.context
        except ValueError as exc:
            raise ProbeFailure(Reason.SMTP_TLS, str(exc)) from None
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    sock.setblocking(False)
    client = aiosmtplib.SMTP(
        hostname=server_name,
        local_hostname=smtp.ehlo_name,
        timeout=None,  # the handler's deadline bounds every step
        use_tls=implicit_tls,
        start_tls=False,
        tls_context=tls_context,
        sock=sock,
    )
    try:
        with ctx.phase(EMAIL_PHASE, "smtp_connect", Reason.SMTP_CONNECT):
            ctx.log.debug("Dialing SMTP server", address=address.ip, port=port)
            await _connect(sock, address.ip, port, module.source_ip_address)
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
        discard(client)
        sock.close()  # safe: an aborted transport no longer watches the descriptor
        raise
    return client


async def send(client: aiosmtplib.SMTP, module: EmailModule, message: bytes) -> None:
    """MAIL FROM, RCPT TO, DATA: returns once the server accepted the mail (250)."""
    with _smtp_errors(Reason.SMTP_ERROR):
        await client.mail(module.mail_from)
        await client.rcpt(module.to)
        await client.data(message)


async def quit_and_discard(client: aiosmtplib.SMTP) -> None:
    """QUIT after the mail is in, as a courtesy: its failure changes nothing. The session is
    dropped however QUIT ends, the probe's deadline included."""
    try:
        with contextlib.suppress(SMTPException, OSError, TimeoutError):
            async with asyncio.timeout(_QUIT_TIMEOUT):
                await client.quit()
    finally:
        discard(client)


def discard(client: aiosmtplib.SMTP) -> None:
    """Drop a session at once. A graceful close would keep the socket open for the TLS
    close_notify exchange, long after the probe (and maybe the server) gave up on it."""
    if isinstance(client.transport, asyncio.WriteTransport):
        client.transport.abort()
    client.close()


async def _connect(sock: socket.socket, ip: str, port: int, source: str | None) -> None:
    try:
        if source is not None:
            bind_source(sock, source)
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
        if isinstance(error, ssl.SSLError):
            return ProbeFailure(Reason.SMTP_TLS, describe_tls_error(error))
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
