"""The API's error envelope, `{"error": {"code": ..., "message": ...}}`, and its codes; every
answer under /v1 that is not a success is one, the router's own 404 and 405 included."""

from __future__ import annotations

import logging
from typing import Literal

from aiohttp import web
from pydantic import ValidationError

from ..config.errors import error_parts, field_path
from ..logs import fields

logger = logging.getLogger("sonde_exporter.api")

ErrorCode = Literal[
    "VALIDATION_ERROR",
    "LIMIT_EXCEEDED",
    "UNAUTHORIZED",
    "FORBIDDEN",
    "NOT_FOUND",
    "UNAVAILABLE",
]


class ApiError(Exception):
    """A refused request: raised anywhere in a handler, answered as the envelope."""

    def __init__(
        self, status: int, code: ErrorCode, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = {"error": {"code": self.code, "message": self.message}}
        return web.json_response(body, status=self.status, headers=self.headers)


RETRY_AFTER = "5"
"""Seconds: the database is tried again every 5 s (storage.Database.retry_interval)."""


def unavailable(why: object = None) -> ApiError:
    """503 while the database cannot be used (or its monitors load). Why (its path, the OS
    error) goes to the log only: the answer may go to a client not yet authenticated."""
    if why is not None:
        logger.warning("A request found the database unavailable", extra=fields(err=str(why)))
    return ApiError(
        503,
        "UNAVAILABLE",
        "monitors unavailable: the database is not open (the log says why)",
        {"Retry-After": RETRY_AFTER},
    )


def invalid(message: str) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def describe(exc: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """Every bad field and why, in one line; the input itself is never repeated (a password
    may be in it)."""
    parts: list[str] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc, message = error_parts(err)
        if err["type"] == "missing":
            message = "required"
        message = message.replace("Input should be", "must be")
        parts.append(f"{field_path((*prefix, *loc), 'body')}: {message}")
    return "; ".join(dict.fromkeys(parts))


FALLBACK = r"/{api:/*[vV]1(?:/.*)?}"
"""Every path whose first segment is v1 in any case (/V1/x, //v1), so a client that got the
case or a slash wrong still reads a JSON answer. The router tries it after every other route
of the app (its index key is "/"): it answers only what no endpoint does, and no other request
pays for it (a middleware would run on every /probe)."""


async def no_such_endpoint(request: web.Request) -> web.Response:
    """A /v1 path no endpoint has (404), or one whose endpoint takes other methods (405 with
    Allow), as the envelope."""
    where = f"{request.method[:16]} {request.path[:100]!r}"
    allowed: set[str] = set()
    own = request.match_info.route.resource
    for resource in request.app.router.resources():
        if resource is not own:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        methods = sorted(allowed)
        message = f"{where}: method not allowed (allowed: {', '.join(methods)})"
        return ApiError(405, "NOT_FOUND", message, {"Allow": ",".join(methods)}).response()
    return ApiError(
        404, "NOT_FOUND", f"{where}: no such endpoint (see /v1/openapi.json)"
    ).response()
