"""JSON Schema `pattern`s for the rules the server checks in code (targets.py, the name
rule), so the OpenAPI document says what a request must look like, not only its type.

Written in the subset that ECMA-262 (JSON Schema's dialect) and Python's `re` read alike:
classes, groups, counted repeats and lookahead. Code points beyond the BMP appear as
themselves, since the two dialects spell their escapes differently.
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from collections.abc import Iterator

from ..config.fields import REFUSED_CATEGORIES
from ..targets import ZONE_ID

_REFUSED = REFUSED_CATEGORIES.keys() - {"Cs"}
"""The name rule's categories but lone surrogates, which are no character to JSON Schema
(and no JSON text carries one): a pattern cannot name them."""

_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
HOSTNAME = rf"(?=.{{1,253}}\.?$)(?:{_LABEL}\.)*(?![0-9]+\.?$){_LABEL}\.?"
"""targets.check_host: labels of up to 63 characters, the last not all digits."""
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_GROUP = "[0-9A-Fa-f]{1,4}"
PORT = r"0*(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"


def _groups(count: int) -> str:
    """Exactly `count` colon-separated groups ('' for none)."""
    return "" if count == 0 else f"(?:{_GROUP}:){{{count - 1}}}{_GROUP}"


def _ipv6_forms() -> Iterator[str]:
    """Every form ipaddress reads: 8 groups, or a `::` standing for at least one, the last
    two groups possibly written as an IPv4 address."""
    yield _groups(8)
    yield f"(?:{_GROUP}:){{6}}{IPV4}"
    for left in range(8):
        right = f"(?:{_GROUP}(?::{_GROUP}){{0,{6 - left}}})?" if left < 7 else ""
        yield f"{_groups(left)}::{right}"
    for left in range(6):
        tail = f"(?:{_GROUP}:){{0,{5 - left}}}" if left < 5 else ""
        yield f"{_groups(left)}::{tail}{IPV4}"


IPV6 = "(?:" + "|".join(_ipv6_forms()) + f")(?:%{ZONE_ID})?"
"""With a zone (`fe80::1%eth0`), as targets.py takes it."""


def whole(*alternatives: str) -> str:
    return "^(?:" + "|".join(alternatives) + ")$"


TCP_HOST = whole(HOSTNAME, IPV4, IPV6)
ICMP_HOST = whole(HOSTNAME, IPV4, IPV6, rf"\[{IPV6}\]")
"""targets.parse_host: an IPv6 address with or without brackets."""
EMAIL = r"^[!-;=?-~]+@[!-;=?A-~]+$"
"""config.email's address: printable ASCII with no space, < or >, around its last @."""
TEXT = r"^[^\u0000-\u001f\u007f]*$"
"""config.fields.header_safe: no C0 control character or DEL."""


def mail_url(schemes: tuple[str, ...]) -> str:
    """targets.parse_mail_url: scheme://host[:port], an IPv6 host in brackets, no path."""
    scheme = "|".join(schemes)
    return rf"^(?:{scheme})://(?:{HOSTNAME}|{IPV4}|\[{IPV6}\])(?::{PORT})?/?$"


def _char(code: int) -> str:
    return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)


def _ranges(codes: list[int]) -> str:
    """Ascending code points as class ranges."""
    out: list[str] = []
    start = prev = codes[0]
    for code in [*codes[1:], -1]:
        if code != prev + 1:
            out.append(_char(start) if start == prev else f"{_char(start)}-{_char(prev)}")
            start = code
        prev = code
    return "".join(out)


@functools.cache
def name_pattern() -> str:
    """A name or tag: no refused character, and not blank (some character not a space).
    Walks the whole code space (about 0.4 s): api.routes builds the document off the loop."""
    category = unicodedata.category
    marked = [
        (code, category(char) in _REFUSED)
        for code in range(sys.maxunicode + 1)
        if (char := chr(code)).isspace() or category(char) in _REFUSED
    ]
    bad = _ranges([code for code, refused in marked if refused])
    blank = _ranges([code for code, _ in marked])
    return f"^[^{bad}]*[^{blank}][^{bad}]*$"
