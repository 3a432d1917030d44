"""The monitor engine's HTTP endpoints: /monitors/metrics and /v1/sd."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from .discovery import Discovery
from .engine import MonitorEngine
from .exposition import render

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ENGINE = web.AppKey("monitor_engine", MonitorEngine)
DISCOVERY = web.AppKey("discovery", Discovery)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def unavailable(engine: MonitorEngine) -> web.Response:
    """503 while the database cannot be used: /probe keeps working meanwhile."""
    return web.Response(
        status=503,
        text=f"monitors unavailable: {engine.unavailable_reason()}\n",
        headers={"Retry-After": "5"},
    )


async def monitors_metrics(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if not engine.ready:
        return unavailable(engine)
    response = web.Response(body=render(engine).encode(), headers={"Content-Type": CONTENT_TYPE})
    response.enable_compression()  # thousands of monitors: worth it, when the client asks
    return response


async def service_discovery(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    if not engine.ready:
        return unavailable(engine)
    transport = request.transport
    local = transport.get_extra_info("sockname") if transport is not None else None
    local_port = local[1] if isinstance(local, tuple) else 0
    return web.json_response(request.app[DISCOVERY].groups(engine, local_port))


def _open(handler: Handler) -> Handler:
    return handler


def add_routes(
    app: web.Application,
    engine: MonitorEngine,
    discovery: Discovery,
    sd_guard: Callable[[Handler], Handler] = _open,
) -> None:
    """Serve the engine's endpoints (app.py runs the engine); `sd_guard` wraps /v1/sd (the
    management API's check of the sd:read scope)."""
    app[ENGINE] = engine
    app[DISCOVERY] = discovery
    app.router.add_get("/monitors/metrics", monitors_metrics)
    app.router.add_get("/v1/sd", sd_guard(service_discovery))
