"""/status as HTML: the state summary and filters, then one list of monitors per tag."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from html import escape
from urllib.parse import quote

from .layout import page
from .overview import Filter, Row, groups
from .states import STATES
from .svg import Sparklines
from .text import iso, milliseconds, moment, percent

WINDOWS = (("24h", "24 hours"), ("7d", "7 days"), ("30d", "30 days"))


def _filters(current: Filter, counts: Counter[str]) -> str:
    boxes = "".join(
        f'<label class="chip {s.key}"><input type="checkbox" name="state" value="{s.key}"'
        f"{' checked' if s.key in current.states else ''}>"
        f'<span class="label">{s.label}</span> <span class="count">{counts[s.key]}</span></label>'
        for s in STATES
    )
    return (
        '<form class="filters" method="get" action="status" role="search" '
        'aria-label="Filter monitors">'
        '<div class="search"><label for="q">Name, target, kind or tag</label>'
        f'<input id="q" name="q" type="search" maxlength="200" value="{escape(current.text)}">'
        '<button type="submit">Filter</button></div>'
        f'<fieldset class="states"><legend>Show only these states</legend>{boxes}</fieldset>'
        "</form>"
    )


def _row(row: Row, shown: bool, sparks: Sparklines) -> str:
    r, last = row.record, row.last
    checked = (
        f'<time datetime="{iso(last.checked_at)}">{moment(last.checked_at)}</time>'
        if last
        else "never"
    )
    uptime = "".join(
        f'<span><abbr title="uptime over {title}">{name}</abbr> {percent(v)}</span>'
        for (name, title), v in zip(WINDOWS, row.uptime, strict=True)
    )
    return (
        f'<li class="monitor" data-state="{row.state.key}" '
        f'data-search="{escape(row.search_text())}"{"" if shown else " hidden"}>'
        f'<span class="badge {row.state.key}">{row.state.label}</span>'
        f'<a class="name" href="status/{quote(r.id, safe="")}">{escape(r.name)}</a>'
        f'<span class="where"><span class="kind">{escape(r.kind)}</span> '
        f'<span class="target">{escape(r.target)}</span></span>'
        f'<span class="last">Checked {checked}</span>'
        f'<span class="rt">{milliseconds(last.response_time if last else None)}</span>'
        f'<span class="uptime">{uptime}</span>{sparks.draw(row.key, row.recent)}</li>'
    )


def _group(index: int, tag: str, members: list[Row], current: Filter, sparks: Sparklines) -> str:
    """Every member is rendered, those the filter leaves out hidden, so that the script can
    widen a filter without asking the server again."""
    matching = [current.matches(m) for m in members]
    hidden = "" if any(matching) else " hidden"
    items = "".join(_row(m, match, sparks) for m, match in zip(members, matching, strict=True))
    return (
        f'<section class="group" aria-labelledby="g{index}"{hidden}><h2 id="g{index}">'
        f'{escape(tag)} <span class="count">{sum(matching)}</span></h2>'
        f'<ul class="monitors">{items}</ul></section>'
    )


def render_overview(
    rows: Sequence[Row], current: Filter, sparks: Sparklines, *, public: bool, now: float
) -> str:
    counts = Counter(row.state.key for row in rows)
    shown = sum(1 for row in rows if current.matches(row))
    sections = "".join(
        _group(i, tag, members, current, sparks) for i, (tag, members) in enumerate(groups(rows))
    )
    if not rows:
        sections = '<p class="empty">No monitors are configured.</p>'
    summary = (
        f'<p class="summary" aria-live="polite">Showing <span id="shown">{shown}</span> '
        f"of {len(rows)} monitors.</p>"
    )
    no_match = " hidden" if shown or not rows else ""
    empty_note = f'<p class="empty js-empty"{no_match}>No monitor matches this filter.</p>'
    body = f"{_filters(current, counts)}{summary}{sections}{empty_note}"
    return page("Status", body, to_status="status/", public=public, now=now, script=True)
