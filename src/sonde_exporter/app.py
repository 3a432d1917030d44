"""The composition root: every part of the running exporter built in one place, and each
resource's lifetime one aiohttp cleanup context, started in this order and torn down in the
reverse one.

    web security (its file watcher)
    database          opened first, closed last: everything below reads or writes it
    password key      the engine's: loaded before it plans (stored email monitors need it),
                      and handed to the API, which seals with it
    monitor engine    loads, plans and schedules; stopped before the database closes
    API schema        built off the loop before the first request
    status page       its uptime cache warmed after the engine loaded, closed first

Routes only register handlers; which module registers first decides nothing.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from .api.openapi import document
from .api.routes import add_routes as add_api_routes
from .exporter import EXPORTER, Exporter
from .monitors.discovery import Discovery
from .monitors.engine import MonitorEngine
from .monitors.routes import add_routes as add_monitor_routes
from .server import add_routes as add_server_routes
from .statuspage.routes import add_routes as add_status_routes
from .statuspage.uptime import UptimeCache
from .storage import MonitorStore
from .storage.secrets import PasswordKey
from .websecurity import WebConfig, install_web_security

LISTENER_CONTEXT = web.AppKey("listener_context", ssl.SSLContext)
"""The TLS context to listen with, when the web config asks for TLS (absent otherwise)."""

Lifetime = Callable[[web.Application], AsyncIterator[None]]


def build_app(
    exporter: Exporter, *, public_status: bool = False, web_config: WebConfig | None = None
) -> web.Application:
    """The application serving `exporter`, guarded as `web_config` says."""
    app = web.Application()
    listener_context = install_web_security(app, web_config, exporter.metrics)
    if listener_context is not None:
        app[LISTENER_CONTEXT] = listener_context
    app[EXPORTER] = exporter
    engine = exporter.monitors
    password_key = engine.planner.passwords
    add_server_routes(app)
    sd_guard = add_api_routes(app, engine, exporter.monitor_options.limit, password_key)
    discovery = Discovery(exporter.monitor_options.address, exporter.timeout_offset)
    add_monitor_routes(app, engine, discovery, sd_guard)
    uptime = add_status_routes(app, engine, public=public_status)
    app.cleanup_ctx.extend(
        (
            _store(engine.store),
            _password_key(password_key),
            _engine(engine),
            _api_schema,
            _status_page(engine, uptime),
        )
    )
    return app


def _store(store: MonitorStore) -> Lifetime:
    async def lifetime(_: web.Application) -> AsyncIterator[None]:
        await store.start()
        yield
        await store.close()  # writes what the engine queued before it stopped

    return lifetime


def _password_key(password_key: PasswordKey) -> Lifetime:
    async def lifetime(_: web.Application) -> AsyncIterator[None]:
        password_key.load()
        yield

    return lifetime


def _engine(engine: MonitorEngine) -> Lifetime:
    async def lifetime(_: web.Application) -> AsyncIterator[None]:
        await engine.start()
        yield
        await engine.stop()

    return lifetime


async def _api_schema(_: web.Application) -> AsyncIterator[None]:
    """The name pattern walks the code space: built off the loop, before any request."""
    await asyncio.get_running_loop().run_in_executor(None, document)
    yield


def _status_page(engine: MonitorEngine, uptime: UptimeCache) -> Lifetime:
    async def lifetime(_: web.Application) -> AsyncIterator[None]:
        if engine.ready:  # the first /status need not wait
            uptime.refresh_soon(time.time())
        yield
        await uptime.close()

    return lifetime
