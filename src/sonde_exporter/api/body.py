"""Reading a request: a JSON object body under a size limit, and the results page query."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from .errors import ApiError, invalid
from .fields import MAX_BODY

MAX_OFFSET = 2**53
"""Beyond any real history; keeps the offset an integer SQLite takes."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _number(text: str) -> int | float:
    """A whole number is an integer however it is written (`1.0`, `1e3`), as JSON Schema
    2020-12 counts it; the models are strict, so they would refuse it as a float."""
    value = float(text)
    return int(value) if value.is_integer() else value


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; 400 VALIDATION_ERROR (413 when too large) naming what is
    wrong with it."""
    if request.content_type != "application/json":
        raise invalid(
            f"body: Content-Type must be application/json, not {request.content_type[:64]!r}"
        )
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _too_large()
    raw = bytearray()
    while chunk := await request.content.readany():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise _too_large()
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant, parse_float=_number)
    except UnicodeDecodeError:
        raise invalid("body: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise invalid(
            f"body: malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:
        raise invalid(f"body: malformed JSON: {exc}") from None
    except RecursionError:
        raise invalid("body: malformed JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise invalid("body: must be a JSON object")
    return data


def _too_large() -> ApiError:
    return ApiError(413, "VALIDATION_ERROR", f"body: larger than {MAX_BODY} bytes")


def only_query(request: web.Request, *known: str) -> None:
    """400 for a query parameter other than `known`, or one given twice."""
    query = request.query
    for name in query:
        if name not in known:
            have = f"have {' and '.join(known)}" if known else "this endpoint takes none"
            raise invalid(f"{name[:64]!r}: unknown query parameter ({have})")
        if len(query.getall(name)) > 1:
            raise invalid(f"{name}: given more than once")


def page(request: web.Request) -> tuple[int, int]:
    """`limit` 1-200 (default 50) and `offset` >= 0 (default 0); a bad value is 400 (and
    another parameter, refused by only_query first)."""
    query = request.query
    limit = _integer(query, "limit", 50, 1, 200)
    offset = _integer(query, "offset", 0, 0, MAX_OFFSET)
    return limit, offset


def _integer(query: Any, name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 18) or not low <= int(text) <= high:
        raise invalid(f"{name}: must be an integer from {low} to {high}, not {text[:32]!r}")
    return int(text)
