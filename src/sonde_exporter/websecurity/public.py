"""The app key through which a page declares routes that need no credentials."""

from __future__ import annotations

from aiohttp import web

PUBLIC_ROUTES = web.AppKey("public_routes", frozenset[str])
"""Canonical routes that need no credentials: the web security middleware skips basic auth
for them (the rate limit and TLS still apply). Empty unless --web.status-page.public."""
