"""Mounting the management API on the application: the keys, the kinds' endpoints, the
password key, and /v1/openapi.json."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from ..logs import fields
from ..monitors.engine import MonitorEngine
from ..storage.secrets import SecretBox, SecretError, load_box
from .auth import Handler, KeyChecker
from .crud import MonitorApi
from .errors import FALLBACK, no_such_endpoint, unavailable
from .kinds import KINDS
from .openapi import document

logger = logging.getLogger("sonde_exporter.api")


class PasswordKey:
    """The database's password key, loaded at start-up (stored email monitors need it for
    their plans) and, when that failed, retried on the next password to store."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        """The key file (the store's key_file); None: a key that lives as long as the process."""
        self._box: SecretBox | None = None

    def __call__(self) -> SecretBox:
        if self._box is None:
            self._box = load_box(self.path)
        return self._box

    def load(self) -> None:
        """Load an existing key; one is created only when a first password is stored (an
        in-memory database has no stored password to open)."""
        if self.path is None or not self.path.exists():
            return
        try:
            self()
        except (OSError, SecretError) as exc:
            logger.error(
                "Cannot load the password key; email monitors cannot run",
                extra=fields(err=str(exc)),
            )


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
        MonitorApi(kind, engine, keys, limit, password_key).add_routes(app)
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
