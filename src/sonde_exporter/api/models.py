"""The request bodies of each monitor kind: the shared fields (fields.py) and the kind's own."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from ..config.fields import header_safe
from ..config.icmp import ECHO_COUNT, PAYLOAD_SIZE
from ..prober_base import TargetError
from ..probers import accept_target
from ..targets import (
    RECEIVE_SCHEMES,
    SMTP_SCHEMES,
    MailSchemes,
    check_host,
    parse_mail_url,
)
from .fields import IntervalSeconds, MonitorIn, Printable, TimeoutMs


def _icmp_host(value: str) -> str:
    try:
        accept_target("icmp", value)
    except TargetError as exc:
        raise ValueError(f"Invalid hostname: {exc}") from None
    return value


def _mail_url(schemes: MailSchemes) -> AfterValidator:
    def check(value: str) -> str:
        parse_mail_url(value, schemes)
        return value

    return AfterValidator(check)


Host = Annotated[str, Field(min_length=1, max_length=255)]


class TcpMonitorIn(MonitorIn):
    """A TCP connect to host:port; `data` is sent once connected (after the module's own
    dialogue steps)."""

    host: Annotated[Host, AfterValidator(check_host)]
    """The host rule; with its port it is always a target /probe takes (a 253-character name
    and :65535 make targets.MAX_TARGET_LENGTH)."""
    port: Annotated[int, Field(ge=1, le=65535)]
    data: Annotated[str, Field(min_length=1, max_length=4096)] | None = None


class IcmpMonitorIn(MonitorIn):
    """ICMP echo requests to a hostname or IP address (no scheme, path, port or spaces)."""

    host: Annotated[Host, AfterValidator(_icmp_host)]
    packetSize: Annotated[int, PAYLOAD_SIZE] = 56
    count: Annotated[int, ECHO_COUNT] = 3


class EmailMonitorIn(MonitorIn):
    """A mail round trip: sent through `smtpUrl`, awaited in the `receiveUrl` mailbox, both
    logged in to with `username` and `password` (write-only: never returned)."""

    timeoutMs: TimeoutMs = 30_000
    intervalSeconds: IntervalSeconds = 300
    smtpUrl: Annotated[str, Field(max_length=255), _mail_url(SMTP_SCHEMES)]
    receiveUrl: Annotated[str, Field(max_length=255), _mail_url(RECEIVE_SCHEMES)]
    email: Annotated[str, Field(min_length=3, max_length=255), Printable]
    from_: Annotated[str, Field(min_length=3, max_length=255), Printable] | None = Field(
        default=None, alias="from"
    )
    username: Annotated[str, Field(min_length=1, max_length=255), AfterValidator(header_safe)]
    password: Annotated[str, Field(min_length=1, max_length=1024), Printable]
