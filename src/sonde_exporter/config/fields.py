"""The value types every config block uses: strict models, durations, regexes, secrets, paths."""

from __future__ import annotations

import ipaddress
import math
import os
import unicodedata
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationInfo,
)

from ..durations import format_duration, parse_duration
from ..regex import Pattern, RegexError


def _duration(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("expected a duration string such as 5s, 1m30s or 250ms")
    if value.strip().startswith("-"):
        raise ValueError(f"duration {value!r} must not be negative")
    seconds = parse_duration(value)
    if not math.isfinite(seconds):
        raise ValueError(f"duration {value!r} is too large")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""Seconds (never negative), written in the file as a Go-style duration."""


def duration_between(low: float, high: float, words: str) -> AfterValidator:
    """A Duration's range: `Annotated[Duration, duration_between(1, 60, "1s to 1m")]`; out
    of it the error reads "must be from 1s to 1m"."""

    def check(value: float) -> float:
        if not low <= value <= high:
            raise ValueError(f"must be from {words}")
        return value

    return AfterValidator(check)


def _regex(value: object) -> Pattern:
    if not isinstance(value, str):
        raise ValueError("expected a regular expression string")
    try:
        return Pattern(value)
    except RegexError as exc:
        raise ValueError(str(exc)) from None


Regex = Annotated[
    Pattern,
    PlainValidator(_regex),
    PlainSerializer(lambda p: p.text, return_type=str),
]
"""A regular expression in RE2 syntax (Go's), compiled at load, matched in linear time."""

REDACTED = "<secret>"
Secret = Annotated[SecretStr, PlainSerializer(lambda _: REDACTED, return_type=str)]
"""A password or token: rendered as <secret> in /config and debug output (see dump_yaml).

Type every password-like field as Secret; a test fails for any config field whose name looks
like a secret but whose type is not.
"""

IpProtocol = Literal["ip4", "ip6"]
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def config_path(path: str | None, info: ValidationInfo) -> str | None:
    """A file named in the config: relative paths are relative to the config file's directory,
    as in prometheus/common (and so in blackbox_exporter). Returned absolute, so that the value
    stored and validated again later (an API monitor's module) names the same file."""
    if path is None:
        return None
    base = (info.context or {}).get("directory")
    return os.path.abspath(path if base is None else Path(base, path))


def latin1(value: str) -> bytes:
    """YAML escapes like "\\x00" mean bytes; anything beyond latin-1 is sent as UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return _utf8(value)


def _utf8(value: str) -> bytes:
    try:
        return value.encode()
    except UnicodeEncodeError as exc:  # a lone surrogate, such as "\ud800" in YAML
        raise ValueError(
            f"contains {value[exc.start]!r} at position {exc.start}, which is not text "
            "(a lone UTF-16 surrogate)"
        ) from None


def check_ip(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def header_safe(value: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters or line breaks")
    _utf8(value)
    return value


REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "a format character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
    "Cs": "a lone surrogate",
}
"""Unicode categories that are invisible, reorder text (U+202E) or break lines (U+2028,
U+0085): in a name they would forge log lines and disguise what a page shows."""


def code_point(char: str) -> str:
    """`U+202E (RIGHT-TO-LEFT OVERRIDE)`; controls have no Unicode name, so their kind."""
    name = unicodedata.name(char, "") or REFUSED_CATEGORIES.get(
        unicodedata.category(char), "unnamed"
    )
    return f"U+{ord(char):04X} ({name})"


def plain_text(value: str) -> str:
    """Text shown on pages and in log lines (label values, tags): no character of the
    categories Cc, Cf, Zl or Zp."""
    for char in value:
        if unicodedata.category(char) in REFUSED_CATEGORIES:
            raise ValueError(f"{code_point(char)} is not allowed")
    return value


def plain_name(value: str) -> str:
    """A name (of a monitor, a tag, a key): plain text that is not only white space."""
    if not plain_text(value).strip():
        raise ValueError("must not be blank")
    return value


PlainText = Annotated[str, AfterValidator(plain_text)]
"""One rule for config and API alike: the type of label values."""
PlainName = Annotated[str, AfterValidator(plain_name)]
"""One rule for config and API alike: the type of monitor names and tags."""
