"""Reading a mail's headers: its probe token, when it was sent, and its DKIM/SPF/DMARC verdicts."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime

PROBE_HEADER = "X-Sonde-Probe"
"""The header that carries a probe mail's token."""
TOKEN = re.compile(r"^[0-9a-f]{32}$")
"""128 random bits as lowercase hex: what the prober puts in the header."""

_AUTH_METHODS = ("dkim", "spf", "dmarc")
_AUTH_RESULTS = frozenset(
    ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", "policy")
)
"""RFC 8601 result words; anything else is reported as `other`, so the label set is bounded."""


@dataclass(frozen=True, slots=True)
class MailInfo:
    """What the poller knows about one mail: its probe token, when it was sent, its verdicts."""

    token: str | None
    sent: float | None
    """Date header as a Unix time; None when missing or unreadable."""
    auth: tuple[tuple[str, str], ...] = ()
    """(method, result) from Authentication-Results, e.g. (("dkim", "pass"),)."""


def parse_headers(raw: bytes) -> MailInfo:
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    value = str(headers.get(PROBE_HEADER, "")).strip().lower()
    token = value if TOKEN.match(value) else None
    sent = None
    date = headers.get("Date")
    if date is not None:
        with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError):
            sent = parsedate_to_datetime(str(date)).timestamp()
    return MailInfo(
        token, sent, auth_results(str(h) for h in headers.get_all("Authentication-Results") or ())
    )


_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*(?:/\s*[0-9]+\s*)?=\s*([A-Za-z0-9_-]+)")


def auth_results(headers: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """The dkim, spf and dmarc verdicts, topmost header first (the receiving server's own).

    Within one header a method seen several times (two DKIM signatures) counts as `pass` if
    any instance passed, else as its first result.
    """
    found: dict[str, str] = {}
    for header in headers:
        text = " ".join(header.split())
        while _COMMENT.search(text):
            text = _COMMENT.sub(" ", text)
        current: dict[str, str] = {}
        for part in text.split(";")[1:]:  # the first part is the authserv-id
            match = _RESULT.match(part)
            if match is None:
                continue
            method, result = match.group(1).lower(), match.group(2).lower()
            if method not in _AUTH_METHODS or method in found:
                continue
            result = result if result in _AUTH_RESULTS else "other"
            if current.get(method) != "pass":
                current.setdefault(method, result)
                if result == "pass":
                    current[method] = "pass"
        found.update(current)
    return tuple((m, found[m]) for m in _AUTH_METHODS if m in found)
