"""The status page's routes: /status, /status/{id} and their two static files, every answer
under a strict Content-Security-Policy (no inline script or style anywhere)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from aiohttp import web

from ..logs import fields
from ..monitors.engine import MonitorEngine
from ..monitors.routes import ENGINE, unavailable
from ..storage import StorageUnavailable
from ..websecurity.public import PUBLIC_ROUTES
from .detail import PageError, load_detail, parse_paging
from .detail_view import render_detail
from .layout import page
from .overview import SPARK_POINTS, FilterError, load_rows, parse_filter
from .overview_view import render_overview
from .recent import RecentChecks
from .svg import Sparklines, Threshold
from .uptime import UptimeCache

logger = logging.getLogger("sonde_exporter.statuspage")
CSP = (
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
STATUS_PUBLIC = web.AppKey("status_public", bool)
"""Whether /status runs in public mode (the reduced view; see README)."""
UPTIME = web.AppKey("status_uptime", UptimeCache)
RECENT = web.AppKey("status_recent", RecentChecks)
SPARKLINES = web.AppKey("status_sparklines", Sparklines)
STATIC = web.AppKey("status_static", dict[str, bytes])
"""The two static files, read once."""
STATIC_DIR = Path(__file__).parent / "static"
STATIC_TYPES = {"status.css": "text/css", "status.js": "text/javascript"}
ROUTES = ("/status", "/status/{id}", "/status/static/{name}")


def _secured(response: web.Response) -> web.Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _html(text: str, status: int = 200) -> web.Response:
    response = web.Response(text=text, status=status, content_type="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.enable_compression()
    return _secured(response)


def _refusal(status: int, message: str) -> web.Response:
    return _secured(web.Response(status=status, text=f"{message}\n"))


def _lost(engine: MonitorEngine, exc: StorageUnavailable) -> web.Response:
    """503 for a read that failed: why (the path, the OS error) goes to the log only."""
    logger.warning("The status page cannot read the database", extra=fields(err=str(exc)))
    return _secured(unavailable(engine))


async def status_overview(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if not engine.ready:
        return _secured(unavailable(engine))
    try:
        wanted = parse_filter(request.query, request.query.getall("state", []))
    except FilterError as exc:
        return _refusal(400, str(exc))
    records = list(engine.records.values())
    expected = {i: s.last.checked_at for i, s in engine.states.items() if s.last is not None}
    recent = request.app[RECENT]
    now = time.time()
    try:
        settled = await request.app[UPTIME].current(now)
        rows = await load_rows(engine.store, records, settled, recent, expected)
    except StorageUnavailable as exc:
        return _lost(engine, exc)
    sparks = request.app[SPARKLINES]
    return _html(render_overview(rows, wanted, sparks, public=request.app[STATUS_PUBLIC], now=now))


async def status_detail(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if not engine.ready:
        return _secured(unavailable(engine))
    public = request.app[STATUS_PUBLIC]
    try:
        paging = parse_paging(request.query)
    except PageError as exc:
        return _refusal(400, str(exc))
    now = time.time()
    record = engine.records.get(request.match_info["id"])
    detail = None
    if record is not None:
        try:
            detail = await load_detail(engine.store, record, paging, now)
        except StorageUnavailable as exc:
            return _lost(engine, exc)
    if detail is None:
        body = '<p class="empty">No such monitor. <a href="../status">All monitors</a></p>'
        return _html(page("Not found", body, to_status="", public=public, now=now), 404)
    # The thresholds its checks run with: an API monitor's own, laid over its base module.
    plan = engine.plans.get(detail.record.id)
    module = plan.module if plan is not None else None
    thresholds = []
    if module is not None and module.degraded_response_time is not None:
        thresholds.append(Threshold("degraded", "degraded", module.degraded_response_time))
    if module is not None and module.max_response_time is not None:
        thresholds.append(Threshold("down", "max", module.max_response_time))
    return _html(render_detail(detail, paging, thresholds, public=public, now=now))


async def status_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    content_type = STATIC_TYPES.get(name)
    if content_type is None:
        return _refusal(404, "no such file")
    files = request.app[STATIC]
    if name not in files:
        files[name] = (STATIC_DIR / name).read_bytes()
    response = web.Response(body=files[name], content_type=content_type, charset="utf-8")
    # The page links them with ?v=<version>: a day's caching never outlives an upgrade.
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.enable_compression()
    return _secured(response)


def add_routes(app: web.Application, engine: MonitorEngine, *, public: bool) -> UptimeCache:
    """Serve the status page; `public` makes it the reduced view that needs no credentials.
    Returns its uptime cache, whose lifetime app.py ties to the database's."""
    app[STATUS_PUBLIC] = public
    app[UPTIME] = cache = UptimeCache(engine.store)
    app[RECENT] = RecentChecks(SPARK_POINTS)
    app[SPARKLINES] = Sparklines()
    app[STATIC] = {}
    app[PUBLIC_ROUTES] = frozenset(ROUTES) if public else frozenset()
    app.router.add_get("/status", status_overview)
    app.router.add_get("/status/static/{name}", status_static)
    app.router.add_get("/status/{id}", status_detail)
    return cache
