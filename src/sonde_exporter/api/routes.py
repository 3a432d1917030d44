"""Mounting the management API on the application: the keys, the kinds' endpoints (sealing
passwords with the composition root's password key), and /v1/openapi.json."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from ..monitors.engine import MonitorEngine
from ..storage.secrets import PasswordKey
from .auth import Handler, KeyChecker
from .crud import MonitorApi
from .errors import FALLBACK, no_such_endpoint, unavailable
from .kinds import KINDS
from .openapi import document


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


def add_routes(
    app: web.Application, engine: MonitorEngine, limit: int, password_key: PasswordKey
) -> Callable[[Handler], Handler]:
    """Serve the API; return the guard /v1/sd wraps its handler in (scope sd:read, then the
    engine ready, both answered as the API's envelope). The password key is loaded by the
    composition root (app.py) before the engine plans."""
    keys = KeyChecker(engine.store)
    for kind in KINDS:
        MonitorApi(kind, engine, keys, limit, password_key.box).add_routes(app)
    app.router.add_get("/v1/openapi.json", openapi)
    app.router.add_route("*", FALLBACK, no_such_endpoint)
    check_key = keys.guard("sd:read")

    def guard(handler: Handler) -> Handler:
        async def ready(request: web.Request) -> web.StreamResponse:
            if not engine.ready:
                return unavailable().response()
            return await handler(request)

        return check_key(ready)

    return guard
