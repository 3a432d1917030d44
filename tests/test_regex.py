"""RE2 patterns: Go's regexp syntax and meaning, linear-time matching, Go's Expand templates."""

from __future__ import annotations

import pytest

from sonde_exporter.regex import Pattern, RegexError


def search(pattern: str, line: bytes) -> bytes | None:
    match = Pattern(pattern).search(line)
    return None if match is None else match.group()


def test_caret_plus_is_a_repeated_anchor_as_in_go() -> None:
    """Go parses `^+OK` as (^)+ then OK: it matches "OK" at the start, and not "+OK"."""
    assert search("^+OK", b"OK ready") == b"OK"
    assert search("^+OK", b"+OK POP3 ready") is None
    assert search(r"^\+OK", b"+OK POP3 ready") == b"+OK"


@pytest.mark.parametrize(
    ("pattern", "line", "found"),
    [
        ("a$", b"a\n", None),  # Go's $ is the end of the text; Python's also takes a final \n
        (r"\s", b"\x0b", None),  # \s is [\t\n\f\r ], without \v
        (r"^\w+$", "é".encode(), None),  # \w is ASCII
        ("(?i)é", "É".encode(), "É".encode()),  # the text is UTF-8; folding is Unicode
        ("a.b", "aéb".encode(), "aéb".encode()),  # . is one character, not one byte
        ("a|ab", b"ab", b"a"),  # leftmost-first, not leftmost-longest
        (r"(?m)^b", b"a\nb", b"b"),
        (r"\Q+.\E", b"a+.b", b"+."),
    ],
)
def test_meaning_follows_go(pattern: str, line: bytes, found: bytes | None) -> None:
    assert search(pattern, line) == found


def test_backtracking_pattern_runs_in_linear_time() -> None:
    """Python's re needs about 2^n steps here; RE2 one pass (no timing needed: it returns)."""
    assert Pattern("(a+)+$").search(b"a" * 100_000 + b"!") is None
    assert Pattern("(a+)+$").search(b"a" * 100_000) is not None


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", r"invalid escape sequence: \1"),  # backreference
        ("(?=a)", "invalid perl operator: (?="),  # lookahead
        ("(?<!a)b", "invalid perl operator"),  # lookbehind
        ("[a", "missing ]: [a"),
        ("a{1001}", "invalid repetition size"),
        (r"a\Z", r"invalid escape sequence: \Z"),
        (r"a\C", r"invalid escape sequence \C"),  # RE2 takes \C (any byte); Go does not
        ("x**", "bad repetition operator"),
    ],
)
def test_patterns_go_refuses_are_errors(pattern: str, reason: str) -> None:
    with pytest.raises(RegexError) as caught:
        Pattern(pattern)
    message = str(caught.value)
    assert message.startswith(f"invalid regular expression '{pattern}': ")
    assert reason in message


def test_any_byte_escape_is_literal_inside_quoting() -> None:
    assert search(r"\Q\C\E", b"x\\Cy") == b"\\C"


@pytest.mark.parametrize(
    ("template", "expanded"),
    [
        (b"PONG ${1}", b"PONG irc.example"),
        (b"PONG $1", b"PONG irc.example"),
        (b"$host/$port", b"irc.example/6667"),
        (b"${host}x", b"irc.examplex"),
        (b"$hostx", b""),  # a name takes every letter, digit and _: group "hostx" does not exist
        (b"$1x", b""),  # likewise "1x"
        (b"${01}", b""),  # a leading zero makes a name, not group 1
        (b"$0", b"PING irc.example 6667"),
        (b"$9 ${nope}|", b" |"),  # no such group: nothing
        (b"$$1 costs $", b"$1 costs $"),
        (b"${1", b"${1"),  # no reference: the $ stays
        (b"${}", b"${}"),
        (b"no dollar", b"no dollar"),
    ],
)
def test_expand_follows_go(template: bytes, expanded: bytes) -> None:
    match = Pattern(r"PING (?P<host>\S+) (?P<port>\d+)").search(b"PING irc.example 6667")
    assert match is not None
    assert match.expand(template) == expanded


def test_group_that_did_not_take_part_expands_to_nothing() -> None:
    match = Pattern("(a)|(b)").search(b"b")
    assert match is not None
    assert (match.group(1), match.group(2)) == (None, b"b")
    assert match.expand(b"[$1][$2]") == b"[][b]"
