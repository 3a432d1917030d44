"""What a request that aiohttp cannot parse at all gets: a one-line 400, the API's JSON
envelope when its request line names a /v1 path, and a debug log line, never a traceback.

aiohttp answers such a request itself, before any route or middleware (its path is not known
yet), with the offending bytes echoed over several lines, and logs a traceback at error level
for each: any client could fill the log with them. The request line is read from the first
bytes of the data that brought the request, when they hold it (a request line split across
packets gets the plain answer).
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from ..logs import fields

logger = logging.getLogger("sonde_exporter.web")
HEAD = 256
"""Bytes of each read kept to find a request line in."""


def _names_the_api(head: bytes) -> bool:
    line = head.partition(b"\r\n")[0].partition(b"\n")[0]
    parts = line.split(b" ")
    if len(parts) < 2:
        return False
    return parts[1].lstrip(b"/").partition(b"/")[0].lower() == b"v1"


def malformed_request(head: bytes, remote: str | None, message: str) -> web.Response:
    """The answer to a request aiohttp refused to parse; `message` is aiohttp's reason."""
    reason = (message.strip().splitlines() or ["malformed request"])[0].rstrip(":")[:200]
    logger.debug("Malformed request", extra=fields(remote=remote, err=reason))
    if _names_the_api(head):
        body = {"error": {"code": "VALIDATION_ERROR", "message": f"request: {reason}"}}
        response = web.Response(status=400, text=json.dumps(body), content_type="application/json")
    else:
        response = web.Response(status=400, text=f"400 Bad Request: {reason}\n")
    response.force_close()
    return response
