"""The status page in process: valid HTML, the CSP on every answer, 400 for bad parameters,
what public mode leaves out, uptime from the roll-ups, and queries that use the index."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import html5lib
import pytest
from aiohttp.test_utils import TestClient
from status_seed import CONFIG, MONITORS, Seeded, seed

from sonde_exporter.cli import parse_args
from sonde_exporter.exporter import Exporter
from sonde_exporter.monitors.options import MonitorOptions
from sonde_exporter.server import create_app
from sonde_exporter.statuspage.routes import CSP, PUBLIC_ROUTES
from sonde_exporter.storage import status_rows

BY_NAME = {m.name: m for m in MONITORS}
CHECKOUT = BY_NAME["checkout-api"]
HTML_NS = "{http://www.w3.org/1999/xhtml}"
Client = TestClient  # type: ignore[type-arg]
Start = Callable[..., Awaitable[Client]]


@pytest.fixture
async def start(aiohttp_client, tmp_path: Path) -> Start:  # type: ignore[no-untyped-def]
    """An exporter over a freshly seeded database, its scheduler off (nothing is probed)."""

    async def run(*, public: bool = False, monitors: list[Seeded] = MONITORS) -> Client:
        config = tmp_path / "config.yml"
        config.write_text(CONFIG)
        db = tmp_path / f"sonde{len(list(tmp_path.glob('*.db')))}.db"
        seed(db, time.time(), monitors)
        options = MonitorOptions(storage_path=str(db), scheduler=False)
        exporter = Exporter.from_file(config, monitors=options)
        client: Client = await aiohttp_client(create_app(exporter, public_status=public))
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


def test_status_queries_use_the_index_or_the_rollups(tmp_path: Path) -> None:
    db = tmp_path / "plan.db"
    seed(db, time.time())
    conn = sqlite3.connect(db)
    plans = {
        "recent": (status_rows._RECENT, (1, 24)),
        "traceroute": (
            "SELECT seq FROM (SELECT seq, details FROM results WHERE monitor_key = ? "
            "ORDER BY seq DESC LIMIT ?) WHERE details LIKE ?",
            (1, 10, "%x%"),
        ),
    }
    for name, (sql, args) in plans.items():
        plan = " | ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))
        assert "results_by_monitor" in plan and "SCAN results" not in plan, (name, plan)
    conn.close()


def test_the_public_flag() -> None:
    assert parse_args([]).public_status is False
    assert parse_args(["--web.status-page.public"]).public_status is True
