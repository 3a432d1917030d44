"""The API's error envelope, `{"error": {"code": ..., "message": ...}}`, and its codes."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import ValidationError

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


def invalid(message: str) -> ApiError:
    return ApiError(400, "VALIDATION_ERROR", message)


def not_found(message: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", message)


def _where(loc: tuple[int | str, ...]) -> str:
    """assertions[0].target, retries.max"""
    out = "".join(f"[{p}]" if isinstance(p, int) else f".{p[:64]}" for p in loc)
    return out.lstrip(".") or "body"


def describe(exc: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """Every bad field and why, in one line; the input itself is never repeated (a password
    may be in it)."""
    parts: list[str] = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = (*prefix, *err["loc"])
        kind = err["type"]
        message = str(err["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required"
        elif kind == "field_error":
            loc = (*loc, *str(err["ctx"]["field"]).split("."))
        message = message.replace("Input should be", "must be")
        parts.append(f"{_where(loc)}: {message}")
    return "; ".join(dict.fromkeys(parts))
