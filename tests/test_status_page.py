"""The status page in process: valid HTML, the CSP on every answer, 400 for bad parameters,
what public mode leaves out, uptime from the roll-ups, and queries that use the index."""

from __future__ import annotations

import itertools
import sqlite3
import time
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path

import html5lib
import pytest
from aiohttp.test_utils import TestClient
from api_harness import start_api
from status_seed import CONFIG, MONITORS, Seeded, seed

from sonde_exporter.app import build_app
from sonde_exporter.cli import parse_args
from sonde_exporter.exporter import Exporter
from sonde_exporter.monitors.options import MonitorOptions
from sonde_exporter.statuspage.detail import Paging, load_detail
from sonde_exporter.statuspage.overview import load_rows
from sonde_exporter.statuspage.recent import RecentChecks
from sonde_exporter.statuspage.routes import CSP
from sonde_exporter.statuspage.uptime import Settled
from sonde_exporter.storage import ResultRecord, SqliteStore
from sonde_exporter.storage.records import Check
from sonde_exporter.websecurity.public import PUBLIC_ROUTES

BY_NAME = {m.name: m for m in MONITORS}
CHECKOUT = BY_NAME["checkout-api"]
HTML_NS = "{http://www.w3.org/1999/xhtml}"
Client = TestClient  # type: ignore[type-arg]
Start = Callable[..., Awaitable[Client]]


@pytest.fixture
async def start(aiohttp_client, tmp_path: Path) -> Start:  # type: ignore[no-untyped-def]
    """An exporter over a freshly seeded database, its scheduler off (nothing is probed)."""
    runs = itertools.count()

    async def run(*, public: bool = False, monitors: list[Seeded] = MONITORS) -> Client:
        config = tmp_path / "config.yml"
        config.write_text(CONFIG)
        db = tmp_path / f"sonde{next(runs)}.db"
        seed(db, time.time(), monitors)
        options = MonitorOptions(storage_path=str(db), scheduler=False)
        exporter = Exporter.from_file(config, monitors=options)
        client: Client = await aiohttp_client(build_app(exporter, public_status=public))
        return client

    return run


def check_html(text: str) -> None:
    """Parse errors fail (html5lib in strict mode), then what a parser accepts but a page must
    not have: duplicate ids, labels or references to no element, inline style or script."""
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=True)
    tree = parser.parse(text)
    elements = list(tree.iter())
    ids = [e.get("id") for e in elements if e.get("id")]
    assert len(ids) == len(set(ids)), f"duplicate ids: {sorted(ids)}"
    for e in elements:
        tag = str(e.tag).removeprefix(HTML_NS)
        assert e.get("style") is None, f"inline style on <{tag}>"
        assert not any(name.startswith("on") for name in e.attrib), f"inline handler on <{tag}>"
        if tag == "script":
            assert e.get("src") and not (e.text or "").strip(), "inline script"
        for attr in ("for", "aria-labelledby"):
            if e.get(attr) and tag != "output":
                assert e.get(attr) in ids, f"<{tag} {attr}={e.get(attr)!r}> names no element"


@pytest.mark.parametrize("public", [False, True])
async def test_every_page_is_valid_html_under_the_csp(start: Start, public: bool) -> None:
    client = await start(public=public)
    for path, status in [
        ("/status", 200),
        ("/status?q=shop&state=down&state=up", 200),
        ("/status?q=nothing", 200),
        (f"/status/{CHECKOUT.id}", 200),
        (f"/status/{CHECKOUT.id}?limit=5&offset=25", 200),
        (f"/status/{BY_NAME['new-monitor'].id}", 200),
        ("/status/tcpm_0000000000000000", 404),
    ]:
        response = await client.get(path)
        assert response.status == status, path
        assert response.headers["Content-Security-Policy"] == CSP
        assert response.content_type == "text/html"
        check_html(await response.text())


async def test_the_index_links_to_the_status_page(start: Start) -> None:
    client = await start()
    text = await (await client.get("/")).text()
    assert '<a href="status">Status page</a>' in text
    check_html(text)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/status?state=broken", "state parameter: 'broken' is not one of down, timeout"),
        ("/status?q=" + "x" * 201, "q parameter: at most 200 characters"),
        (f"/status/{CHECKOUT.id}?limit=0", "limit parameter: must be a whole number from 1"),
        (f"/status/{CHECKOUT.id}?limit=501", "limit parameter: must be a whole number from 1"),
        (f"/status/{CHECKOUT.id}?offset=-1", "offset parameter: must be a whole number"),
        (f"/status/{CHECKOUT.id}?limit=1e3", "limit parameter"),
    ],
)
async def test_bad_parameters_get_a_one_line_400(start: Start, path: str, message: str) -> None:
    client = await start()
    response = await client.get(path)
    text = await response.text()
    assert response.status == 400
    assert text.startswith(message) and text.count("\n") == 1
    assert response.headers["Content-Security-Policy"] == CSP


async def test_static_files(start: Start) -> None:
    client = await start()
    css = await client.get("/status/static/status.css")
    assert css.status == 200 and css.content_type == "text/css"
    assert "prefers-color-scheme: dark" in await css.text()
    js = await client.get("/status/static/status.js")
    assert js.status == 200 and js.content_type == "text/javascript"
    for name in ("other.css", "..%2f..%2fcli.py", "__init__.py"):
        assert (await client.get(f"/status/static/{name}")).status == 404


async def test_public_mode_leaves_out_errors_hops_module_and_links(start: Start) -> None:
    private = await start()
    detail = await (await private.get(f"/status/{CHECKOUT.id}")).text()
    for text in ("connection refused by 127.0.0.1:9", "127.0.0.2", "tcp_slow", ">Error<"):
        assert text in detail
    assert private.app[PUBLIC_ROUTES] == frozenset()
    await private.close()

    public = await start(public=True)
    detail = await (await public.get(f"/status/{CHECKOUT.id}")).text()
    overview = await (await public.get("/status")).text()
    for text in ("connection refused", "127.0.0.2", "tcp_slow", ">Error<", "traceroute"):
        assert text not in detail
    assert "connect_refused" in detail  # the reason code stays
    assert 'class="home"' not in overview and 'class="home"' not in detail
    assert public.app[PUBLIC_ROUTES] == frozenset(
        {"/status", "/status/{id}", "/status/static/{name}"}
    )


async def test_uptime_comes_from_the_hourly_rollups(start: Start) -> None:
    # One check every 6 h: the 4 newest (up) fall in the last 24 hours, 8 older ones (down)
    # within 7 days.
    slow = Seeded("slow", "up", ["down"] * 8 + ["up"] * 4, ["x"], interval=6 * 3600.0)
    client = await start(monitors=[slow])
    text = await (await client.get("/status")).text()
    assert "24h</abbr> 100%" in text
    assert "7d</abbr> 33.33%" in text and "30d</abbr> 33.33%" in text


async def test_no_query_reads_a_whole_history(tmp_path: Path) -> None:
    """Every statement both pages run, as SQLite plans it: results only through
    results_by_monitor, roll-ups by primary key except the one hourly pass (uptime_sums)."""
    db = tmp_path / "plan.db"
    now = time.time()
    seed(db, now)
    store = SqliteStore(str(db))
    await store.start()
    stored = await store.load()
    statements: list[str] = []
    await store.database.query(lambda c: c.set_trace_callback(statements.append))
    hour = int(now // 3600)
    settled = Settled(hour, await store.uptime_sums(hour, before=0))
    hourly = statements.pop()
    recent = RecentChecks(24)
    expected = {r.monitor_id: r.checked_at for r in stored.latest.values()}
    statements.clear()
    for _ in range(2):  # the first reads every monitor, the second only what is new
        assert await load_rows(store, stored.monitors, settled, recent, expected)
    assert await load_detail(store, stored.monitors[1], Paging(10, 5), now) is not None
    await store.close()
    assert any("WHERE seq > " in s for s in statements)  # the second read only topped up
    plans = {}
    with closing(sqlite3.connect(db)) as conn:
        for sql in dict.fromkeys(s for s in statements if s not in ("BEGIN", "COMMIT")):
            plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
            plans[sql] = plan
            assert "SCAN results" not in plan and "SCAN r " not in plan, (sql, plan)
            assert "SCAN rollups" not in plan, (sql, plan)
        assert any("results_by_monitor" in p for p in plans.values())
        assert any("rollups" in sql and "PRIMARY KEY" in p for sql, p in plans.items())
        # The hourly pass reads the roll-ups of the last 30 days, and no result.
        plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {hourly}"))
        assert "results" not in plan, plan


def test_the_public_flag() -> None:
    assert parse_args([]).public_status is False
    assert parse_args(["--web.status-page.public"]).public_status is True


async def test_recent_checks_follow_new_and_deleted_results(tmp_path: Path) -> None:
    db = tmp_path / "recent.db"
    now = time.time()
    seed(db, now)
    store = SqliteStore(str(db))
    await store.start()
    keys = (await store.status_changes(0, None, 0)).keys
    checkout, homepage = keys[CHECKOUT.id], keys[BY_NAME["homepage"].id]

    async def read() -> dict[int, deque[Check]]:
        latest = (await store.load()).latest
        expected = {r.monitor_id: r.checked_at for r in latest.values()}
        return (await recent.read(store, int(now // 3600), expected))[1]

    recent = RecentChecks(24)
    checks = await read()
    assert len(checks[checkout]) == 24 and checks[checkout][-1].status == "down"
    await store.add_result(ResultRecord(CHECKOUT.id, now, "up", 0.01, None, None))
    checks = await read()
    assert len(checks[checkout]) == 24
    assert (checks[checkout][-1].status, checks[checkout][-2].status) == ("up", "down")
    # The newest results of one monitor deleted: it disagrees with the engine, so it is read
    # again, and only it.
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute(
            "DELETE FROM results WHERE seq IN "
            "(SELECT seq FROM results WHERE monitor_key = ? ORDER BY seq DESC LIMIT 3)",
            (homepage,),
        )
        newest = conn.execute(
            "SELECT checked_at FROM results WHERE monitor_key = ? ORDER BY seq DESC", (homepage,)
        ).fetchall()
    checks = await read()
    assert len(newest) == len(checks[homepage]) == 12 - 3
    assert [c.checked_at for c in reversed(checks[homepage])] == [at for (at,) in newest]
    await store.close()


async def test_the_chart_draws_an_api_monitors_own_thresholds(
    aiohttp_client, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Its module (`tcp`) has none: the lines are the monitor's degradedResponseTimeMs and
    maxResponseTimeMs, as its checks use them."""
    api = await start_api(aiohttp_client, tmp_path, scheduler=False)
    monitor = await api.create(
        "tcp",
        {
            "name": "own",
            "host": "127.0.0.1",
            "port": 9,
            "degradedResponseTimeMs": 150,
            "maxResponseTimeMs": 400,
        },
    )
    await api.exporter.monitors.store.add_result(
        ResultRecord(monitor["id"], time.time(), "up", 0.02, None, None)
    )
    response = await api.client.get(f"/status/{monitor['id']}", headers=api.headers())
    text = await response.text()
    assert response.status == 200
    assert '<line class="thr degraded"' in text and "degraded 150 ms" in text
    assert '<line class="thr down"' in text and "max 400 ms" in text
