"""Reading `target=` values. Every rejection is a TargetError whose text the client sees."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from .prober_base import TargetError

MAX_HOSTNAME_LENGTH = 253
"""The longest name DNS carries (without its final dot)."""
MAX_TARGET_LENGTH = MAX_HOSTNAME_LENGTH + len(":65535")
"""The longest name with its port: what a monitor's host and port make, which /v1/sd hands to
Prometheus as the target of /probe."""
ZONE_ID = r"[A-Za-z0-9_.-]{1,15}"
"""An IPv6 zone (`fe80::1%eth0`): an interface name (at most 15 characters on Linux) or index.
Narrower than what ipaddress reads (anything but `%`), so no control or separator character
rides into a log line or a URL inside a zone."""
_ZONE = re.compile(ZONE_ID)
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
"""One label of a host name. Labels are split on dots and matched one by one: a single
pattern over the whole name (labels with optional dots, repeated) backtracks exponentially on a long run of letters
ending in a refused character, and would hold the event loop for minutes."""


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def check_common(target: str) -> None:
    """Rules for every prober's target: present, short, printable."""
    if not target:
        raise TargetError("missing")
    if len(target) > MAX_TARGET_LENGTH:
        raise TargetError(f"longer than {MAX_TARGET_LENGTH} characters")
    if not target.isprintable():
        raise TargetError("contains control characters or other non-printable characters")


def check_host(host: str) -> str:
    """Accept an IP literal or a syntactically valid hostname; return it unchanged."""
    if not host:
        raise TargetError("empty host")
    if _ip_version(host):
        return host
    if any(c.isspace() for c in host):
        raise TargetError(f"host {host!r} contains whitespace")
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > MAX_HOSTNAME_LENGTH:
        raise TargetError(f"host {host!r} is not a valid hostname or IP address")
    if any(len(label) > 63 for label in labels):
        raise TargetError(f"host {host!r} has a name label longer than 63 characters")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise TargetError(f"host {host!r} is not a valid hostname or IP address")
    if labels[-1].isdigit():  # 256.1.1.1 is neither an address nor a name
        raise TargetError(f"host {host!r} is not a valid IPv4 address or hostname")
    return host


def _reject_url(target: str, expected: str) -> None:
    if "://" in target:
        raise TargetError(f"{target!r} has a URL scheme; expected {expected}")
    if "/" in target:
        raise TargetError(f"{target!r} has a path; expected {expected}")


def _split_bracketed(target: str) -> tuple[str, str]:
    """`[v6]rest` -> (v6, rest), checking that the part in brackets is an IPv6 address."""
    close = target.find("]")
    if close < 0:
        raise TargetError(f"{target!r} has an unclosed '['")
    return _bracketed_v6(target[1:close]), target[close + 1 :]


def _bracketed_v6(host: str) -> str:
    if _ip_version(host) != 6:
        raise TargetError(f"{host!r} in brackets is not an IPv6 address")
    return host


def _ip_version(text: str) -> int:
    """4 or 6 for an IP literal, 0 for anything else."""
    zone = text.partition("%")[2]
    if zone and not _ZONE.fullmatch(zone):
        return 0
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return 0


def parse_host_port(target: str) -> HostPort:
    """`host:port` or `[ipv6]:port`, with no scheme or path."""
    _reject_url(target, "host:port")
    if target.startswith("["):
        host, rest = _split_bracketed(target)
        if not rest.startswith(":"):
            raise TargetError(f"{target!r} is missing a port; expected [ipv6]:port")
        port_text = rest[1:]
    else:
        if target.count(":") > 1:
            raise TargetError(f"{target!r}: an IPv6 address needs brackets, as [::1]:port")
        host, sep, port_text = target.partition(":")
        if not sep:
            raise TargetError(f"{target!r} is missing a port; expected host:port")
        check_host(host)
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise TargetError(f"port {port_text!r} is not a number from 1 to 65535")
    return HostPort(host, int(port_text))


def parse_host(target: str) -> str:
    """A bare host, as the ICMP prober takes it: hostname, IPv4, or IPv6 with or without
    brackets. A scheme, path, port or whitespace is an error."""
    _reject_url(target, "a hostname or IP address")
    if any(c.isspace() for c in target):
        raise TargetError(f"{target!r} contains whitespace")
    if target.startswith("["):
        host, rest = _split_bracketed(target)
        if rest.startswith(":"):
            raise TargetError(f"{target!r} has a port; ICMP targets take no port")
        if rest:
            raise TargetError(f"{target!r} has text after ']'")
        return host
    if ":" in target:
        if _ip_version(target) == 6:
            return target
        if target.count(":") == 1:
            raise TargetError(f"{target!r} has a port; ICMP targets take no port")
        raise TargetError(f"{target!r} is not a valid IPv6 address")
    return check_host(target)


@dataclass(frozen=True, slots=True)
class MailUrl:
    """A mail server URL taken apart: scheme, host, port and whether TLS starts at connect."""

    scheme: str
    host: str
    port: int
    implicit_tls: bool


MailSchemes = Mapping[str, tuple[int, bool]]
"""scheme: (default port, implicit TLS)."""
SMTP_SCHEMES: MailSchemes = {"smtp": (25, False), "smtps": (465, True)}
RECEIVE_SCHEMES: MailSchemes = {
    "pop3": (110, False),
    "pop3s": (995, True),
    "imap": (143, False),
    "imaps": (993, True),
}


def parse_mail_url(value: str, schemes: MailSchemes) -> MailUrl:
    """`scheme://host[:port]`: the one reading of a mail server URL, for a module's smtp.url
    and receive.url and for an email probe's target. Port 0 is an error, as in any target;
    credentials never go in a URL."""
    scheme, sep, rest = value.partition("://")
    if not sep or scheme not in schemes:
        names = ", ".join(f"{s}://" for s in schemes)
        raise TargetError(f"URL {value!r} must start with one of {names}")
    if "@" in rest:
        raise TargetError("credentials do not belong in the URL; set them in the module")
    rest = rest.removesuffix("/")
    if any(c in rest for c in "/?#"):
        raise TargetError(f"URL {value!r} must be {scheme}://host[:port] with no path or query")
    if not rest:
        raise TargetError(f"URL {value!r} has no host")
    parsed = _host_maybe_port(rest)
    default_port, implicit_tls = schemes[scheme]
    return MailUrl(scheme, parsed.host, parsed.port or default_port, implicit_tls)


@dataclass(frozen=True, slots=True)
class EmailTarget:
    """The SMTP server an email probe sends to; None fields come from the module's smtp.url."""

    host: str | None = None
    port: int | None = None
    implicit_tls: bool | None = None
    """True for smtps://, False for smtp://, None to keep the module's scheme."""


def parse_email_target(target: str) -> EmailTarget:
    """Empty (the module's URL), `host`, `host:port`, `[ipv6]:port`, or `smtp(s)://host[:port]`."""
    if not target:
        return EmailTarget()
    if "://" in target:
        url = parse_mail_url(target, SMTP_SCHEMES)
        return EmailTarget(url.host, url.port, url.implicit_tls)
    parsed = _host_maybe_port(target)
    return EmailTarget(parsed.host, parsed.port or None)


def _host_maybe_port(text: str) -> HostPort:
    """`host:port` as parse_host_port, or a bare host (port 0: keep the module's port). An
    IPv6 address goes in brackets: in `2001:db8::1:2525` the port could be part of it."""
    version = _ip_version(text)
    if version == 6:
        raise TargetError(f"{text!r}: an IPv6 address needs brackets, as [::1] or [::1]:port")
    if version:
        return HostPort(text, 0)
    if text.startswith("[") and text.endswith("]"):
        return HostPort(_bracketed_v6(text[1:-1]), 0)
    if ":" not in text:
        return HostPort(check_host(text), 0)
    return parse_host_port(text)
