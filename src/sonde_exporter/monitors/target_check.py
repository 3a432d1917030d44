"""Whether a monitor's module filter lets its target (and an email monitor's mailbox) through, asked when the management API
creates or updates it (each check asks again at resolution, since DNS answers change)."""

from __future__ import annotations

from typing import NamedTuple

from ..config import EmailModule
from ..config.address import AddressChoice
from ..ipfilter import TargetForbidden
from ..prober_base import ProbeFailure
from ..resolve import check_target
from ..targets import EmailTarget, HostPort
from .plan import CheckPlan


class Refusal(NamedTuple):
    """Which connection the filter refuses (the target, or an email monitor's mailbox) and
    its one-line reason."""

    mailbox: bool
    message: str


async def filter_refusal(plan: CheckPlan) -> Refusal | None:
    """The filter's refusal of the target, or of an email monitor's mailbox server, now; else
    None. A name that does not resolve yet is no refusal: its checks will say `dns` until it
    does."""
    host, port, explicit = _destination(plan)
    settings = plan.module.settings
    choice = settings if isinstance(settings, AddressChoice) else None
    destinations = [(False, host, port, explicit)]
    if isinstance(settings, EmailModule):  # the mailbox: any port, no credentials test
        destinations.append((True, settings.receive.parsed_url.host, None, False))
    for mailbox, host, port, explicit in destinations:
        try:
            await check_target(
                plan.module.target_filter,
                host,
                port,
                preferred=choice.preferred_ip_protocol if choice else "ip4",
                fallback=choice.ip_protocol_fallback if choice else True,
                explicit=explicit,
            )
        except TargetForbidden as refused:
            return Refusal(mailbox, refused.message)
        except ProbeFailure:
            continue
    return None


def _destination(plan: CheckPlan) -> tuple[str, int | None, bool]:
    """Where the check connects first: host, port (None for ICMP), credentials at stake."""
    parsed = plan.parsed
    if isinstance(parsed, HostPort):
        return parsed.host, parsed.port, False
    if isinstance(parsed, EmailTarget):
        email = plan.module.settings
        assert isinstance(email, EmailModule)
        url = email.smtp.parsed_url
        host = parsed.host or url.host
        return host, parsed.port or url.port, email.credentials_at_stake(host)
    return str(parsed), None, False
