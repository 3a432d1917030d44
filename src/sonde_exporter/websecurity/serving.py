"""The request guard a web config installs on the aiohttp app, and the listener's context.

Covered: every route except /-/healthy and /-/ready, which skip the rate limit and basic auth
so that health checks need no credentials (as in Prometheus). The management API (/v1/...)
skips basic auth only: HTTP carries one Authorization header, and there it holds the API key
(Bearer), which the API checks against its scopes. Routes the app lists in PUBLIC_ROUTES
(the status page, when --web.status-page.public is given) skip basic auth too. TLS, client certificates and
client_allowed_sans apply to every connection, health checks included. Without a web
config nothing is installed, so /probe pays nothing for this.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from ..selfmetrics import SelfMetrics
from .basicauth import Verdict
from .model import WebConfig
from .public import PUBLIC_ROUTES
from .reloading import WebSecurity
from .tlscontext import has_allowed_san

EXEMPT = frozenset(("/-/healthy", "/-/ready"))
API_PREFIX = "/v1/"


def install_web_security(
    app: web.Application, config: WebConfig | None, metrics: SelfMetrics
) -> ssl.SSLContext | None:
    """Guard `app` as `config` says; the context to listen with, None for plain HTTP.

    Installed first (app.py), so its middleware is the outermost: before any route's own
    checks."""
    if config is None:
        return None
    security = WebSecurity(config, metrics)
    app.middlewares.append(_guard(security))
    app.on_response_prepare.append(_headers(security))
    app.cleanup_ctx.append(_watching(security))
    return security.listener_context


def _api_route(request: web.Request) -> bool:
    """A route of the management API, which checks its own Bearer key instead."""
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical.startswith(API_PREFIX)


def _public(request: web.Request) -> bool:
    """A route the app declares public (the status page with --web.status-page.public)."""
    resource = request.match_info.route.resource
    public = request.app.get(PUBLIC_ROUTES, frozenset())
    return resource is not None and resource.canonical in public


def _exempt(request: web.Request) -> bool:
    """By the route matched, so no spelling of the path can borrow the exemption."""
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical in EXEMPT


def _refusal(status: int, text: str, **headers: str) -> web.Response:
    """Shaped as Go's http.Error, which exporter-toolkit answers with."""
    headers["X-Content-Type-Options"] = "nosniff"
    return web.Response(status=status, text=f"{text}\n", headers=headers)


def _guard(security: WebSecurity) -> Middleware:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        settings = security.settings
        if settings.allowed_sans is not None:
            transport = request.transport
            ssl_object = transport.get_extra_info("ssl_object") if transport else None
            peercert = ssl_object.getpeercert() if ssl_object is not None else None
            if not has_allowed_san(peercert, settings.allowed_sans):
                response = _refusal(
                    403, "Forbidden: the client certificate has none of the client_allowed_sans"
                )
                response.force_close()
                return response
        if _exempt(request):
            return await handler(request)
        if settings.limiter is not None and not settings.limiter.allow(
            request.remote, time.monotonic()
        ):
            return _refusal(429, "Too Many Requests")
        if settings.auth is not None and not _api_route(request) and not _public(request):
            verdict = await settings.auth.check(request.headers.get(hdrs.AUTHORIZATION))
            if verdict is Verdict.BUSY:
                return _refusal(
                    429, "Too Many Requests: password checks queued", **{"Retry-After": "1"}
                )
            if verdict is Verdict.REFUSED:
                return _refusal(401, "Unauthorized", **{hdrs.WWW_AUTHENTICATE: "Basic"})
        return await handler(request)

    return guard


def _headers(
    security: WebSecurity,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in security.settings.headers:
            response.headers[name] = value

    return add_headers


def _watching(security: WebSecurity) -> Callable[[web.Application], AsyncIterator[None]]:
    async def watching(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(security.watch())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return watching
