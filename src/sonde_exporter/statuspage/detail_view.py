"""/status/{id} as HTML: the monitor, its chart and timeline, a page of results and the latest
traceroute. Public mode leaves out what may name internal hosts or config (see README)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from ..storage.store import Trace
from .detail import Detail, Paging
from .layout import page
from .states import result_state
from .svg import Threshold, chart, periods, timeline
from .text import iso, milliseconds, moment, percent

PERIODS_LISTED = 12
NO_RESULTS = '<p class="empty">No results yet.</p>'


def _facts(d: Detail, public: bool) -> str:
    r = d.record
    facts = [("Kind", r.kind), ("Target", r.target or "\u2013"), ("Interval", f"{r.interval:g} s")]
    if not public:
        facts.append(("Module", r.module))
        facts.extend((f"Label {k}", v) for k, v in sorted(r.labels.items()))
    facts.extend(
        (f"Uptime {name}", percent(v))
        for name, v in zip(("24 h", "7 d", "30 d"), d.uptime, strict=True)
    )
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in facts)
    return f'<dl class="facts">{items}</dl>'


def _periods(d: Detail, now: float) -> str:
    runs = periods(list(reversed(d.recent)), now)
    if not runs:
        return ""
    items = "".join(
        f'<li><span class="badge {p.state.key}">{p.state.label}</span> from '
        f'<time datetime="{iso(p.start)}">{moment(p.start)}</time>, {p.checks} checks</li>'
        for p in reversed(runs[-PERIODS_LISTED:])
    )
    return f'{timeline(runs)}<ul class="periods">{items}</ul>'


def _cell(label: str, value: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f'<td data-label="{label}"{attr}>{value}</td>'


def _results(d: Detail, paging: Paging, public: bool) -> str:
    heads = ["Time", "State", "Response time", "Attempts", "Degraded", "Reason"]
    if not public:
        heads.append("Error")
    rows = []
    for r in d.results:
        state = result_state(r)
        cells = [
            _cell("Time", f'<time datetime="{iso(r.checked_at)}">{moment(r.checked_at)}</time>'),
            _cell("State", f'<span class="badge {state.key}">{state.label}</span>'),
            _cell("Response time", milliseconds(r.response_time), "num"),
            _cell("Attempts", str(r.attempts), "num"),
            _cell("Degraded", "yes" if r.degraded else "no"),
            _cell("Reason", escape(r.reason or "\u2013")),
        ]
        if not public:
            cells.append(_cell("Error", escape(r.error or "\u2013"), "error"))
        rows.append(f"<tr>{''.join(cells)}</tr>")
    if not rows:
        return '<p class="empty">No results on this page.</p>'
    head = "".join(f'<th scope="col">{h}</th>' for h in heads)
    first = paging.offset + 1
    last = paging.offset + len(d.results)
    return (
        f'<table class="results"><caption>Results {first}\u2013{last} of {d.total}, newest first'
        f"</caption><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _pager(d: Detail, paging: Paging) -> str:
    def link(offset: int, text: str, rel: str) -> str:
        query = urlencode({"limit": paging.limit, "offset": offset})
        return f'<a rel="{rel}" href="?{escape(query)}">{text}</a>'

    links = []
    if paging.offset > 0:
        links.append(link(max(paging.offset - paging.limit, 0), "Newer results", "prev"))
    if paging.offset + paging.limit < d.total:
        links.append(link(paging.offset + paging.limit, "Older results", "next"))
    if not links:
        return ""
    return f'<nav class="pager" aria-label="Result pages">{" ".join(links)}</nav>'


def _hop(hop: Any, ttl: int) -> str:
    if not isinstance(hop, dict):
        return f'<tr><td class="num">{ttl}</td><td>*</td><td class="num">no answer</td></tr>'
    rtt = hop.get("rtt")
    shown = milliseconds(float(rtt)) if isinstance(rtt, int | float) else "\u2013"
    return (
        f'<tr><td class="num">{escape(str(hop.get("ttl", ttl)))}</td>'
        f'<td>{escape(str(hop.get("address", "")))}</td><td class="num">{shown}</td></tr>'
    )


def _trace(trace: Trace | None) -> str:
    if trace is None:
        return ""
    hops = trace.value.get("hops")
    hops = hops if isinstance(hops, list) else []
    reached = "reached the target" if trace.value.get("reached") else "did not reach the target"
    rows = "".join(_hop(hop, ttl) for ttl, hop in enumerate(hops, 1))
    return (
        '<section aria-labelledby="trace"><h2 id="trace">Latest traceroute</h2>'
        f'<p>From the check at <time datetime="{iso(trace.checked_at)}">'
        f"{moment(trace.checked_at)}</time>: {len(hops)} hops, {reached}.</p>"
        '<table class="hops"><thead><tr><th scope="col">Hop</th><th scope="col">Address</th>'
        f'<th scope="col">Round trip</th></tr></thead><tbody>{rows}</tbody></table></section>'
    )


def render_detail(
    d: Detail, paging: Paging, thresholds: Sequence[Threshold], *, public: bool, now: float
) -> str:
    r = d.record
    last = d.recent[0] if d.recent else None
    checked = moment(last.checked_at) if last else "never"
    body = (
        f'<nav class="crumbs" aria-label="Breadcrumb"><a href="../status">All monitors</a></nav>'
        f'<section aria-labelledby="monitor"><h2 id="monitor">{escape(r.name)} '
        f'<span class="badge {d.state.key}">{d.state.label}</span></h2>'
        f'<p class="last">Last checked {checked}; '
        f"response time {milliseconds(last.response_time if last else None)}.</p>"
        f"{_facts(d, public)}</section>"
        '<section aria-labelledby="chart"><h2 id="chart">Response time</h2>'
        f"{chart(list(reversed(d.recent)), thresholds, now)}</section>"
        '<section aria-labelledby="timeline"><h2 id="timeline">Up and down periods</h2>'
        f"{_periods(d, now) or NO_RESULTS}</section>"
        '<section aria-labelledby="results"><h2 id="results">Results</h2>'
        f"{_results(d, paging, public)}{_pager(d, paging)}</section>"
        f"{'' if public else _trace(d.trace)}"
    )
    title = f"{r.name} \u2013 Status"
    return page(title, body, to_status="", public=public, now=now)
