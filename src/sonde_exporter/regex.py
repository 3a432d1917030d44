"""Regular expressions as blackbox_exporter runs them: RE2 syntax (Go's regexp), linear time.

Python's `re` backtracks: `(a+)+$` against forty `a`s and a `!` runs for hours and holds the
event loop, so one module could freeze the whole exporter. RE2 (the google-re2 bindings)
matches in time linear in the input whatever the pattern, and its syntax is Go's, so a
blackbox_exporter config means the same here: `^+OK` is `^` repeated, then `OK`, as in Go.

Patterns are matched against raw bytes as UTF-8, as Go matches a line; one difference is
left: RE2's `.` and negated classes do not match a byte that is not UTF-8 (Go's do).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_TEMPLATE_REF = re.compile(rb"\$(\$|\{(\w+)\}|(\w+))")


@cache
def _engine() -> Any:
    """The RE2 bindings (their public API only), imported when the first pattern is compiled:
    a config without patterns does not pay their memory (about 2 MB)."""
    import re2  # type: ignore[import-untyped]

    return re2


class RegexError(ValueError):
    """A pattern that RE2 (and so Go) refuses."""


class Pattern:
    """A compiled RE2 pattern; `text` is the pattern as written in the config."""

    __slots__ = ("_groups", "_names", "_re", "text")

    def __init__(self, text: str) -> None:
        if _has_any_byte_escape(text):
            raise RegexError(
                f"invalid regular expression {_shown(text)}: invalid escape sequence \\C"
            )
        try:
            encoded = text.encode()
        except UnicodeEncodeError:
            raise RegexError(f"invalid regular expression {_shown(text)}: invalid UTF-8") from None
        re2 = _engine()
        options = re2.Options()
        options.log_errors = False  # RE2 would print every refused pattern on stderr
        try:
            compiled: Any = re2.compile(encoded, options)
        except re2.error as exc:
            error = exc.args[0].decode(errors="replace") if exc.args else "refused"
            raise RegexError(f"invalid regular expression {_shown(text)}: {error}") from None
        self.text = text
        self._re = compiled
        self._groups = range(compiled.groups + 1)
        self._names: dict[str, int] = {
            name.decode(): index for name, index in compiled.groupindex.items()
        }

    def search(self, data: bytes) -> Match | None:
        """The leftmost match in `data` (Go's FindSubmatchIndex), or None."""
        found = self._re.search(data)
        if found is None:
            return None
        return Match(self, data, [found.span(index) for index in self._groups])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pattern) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Pattern({self.text!r})"


class Match:
    __slots__ = ("_data", "_pattern", "_spans")

    def __init__(self, pattern: Pattern, data: bytes, spans: list[tuple[int, int]]) -> None:
        self._pattern = pattern
        self._data = data
        self._spans = spans

    def group(self, index: int = 0) -> bytes | None:
        """The bytes group `index` matched; None when it took no part in the match."""
        start, end = self._spans[index]
        return None if start < 0 else self._data[start:end]

    def expand(self, template: bytes) -> bytes:
        """Go's Regexp.Expand: `$1`, `${1}`, `$name`, `${name}` insert groups, `$$` is `$`.

        As in Go, `$name` takes the longest run of letters, digits and `_` (`$1x` is group
        "1x"), a number with a leading zero is a name, and a group that does not exist or did
        not match inserts nothing; a `$` that starts no reference stays as it is.
        """
        if b"$" not in template:
            return template
        return _TEMPLATE_REF.sub(self._reference, template)

    def _reference(self, ref: re.Match[bytes]) -> bytes:
        if ref.group(1) == b"$":
            return b"$"
        name = (ref.group(2) or ref.group(3)).decode()
        if name.isdigit() and (name == "0" or not name.startswith("0")):
            index: int | None = int(name)
        else:
            index = self._pattern._names.get(name)
        if index is None or index >= len(self._spans):
            return b""
        return self.group(index) or b""


def _has_any_byte_escape(text: str) -> bool:
    r"""Whether `text` uses `\C` (any byte), which RE2 takes and Go refuses; `\Q...\E` is literal."""
    pos = 0
    while (escape := _ESCAPE.search(text, pos)) is not None:
        if escape.group(1) == "C":
            return True
        pos = escape.end()
        if escape.group(1) == "Q":
            end = text.find("\\E", pos)
            if end < 0:
                return False
            pos = end + 2
    return False


def _shown(text: str) -> str:
    """The pattern as written, quoted; escaped only when it holds unprintable characters."""
    return f"'{text}'" if text.isprintable() else repr(text)
