"""API keys: random, stored as SHA-256, checked in constant time, each with a set of scopes.

A key is 256 random bits, so a fast hash is right: nobody can guess a preimage, and a slow
password hash would only slow every request. The keys are read from the database at most
once a second, so `api-key revoke` takes effect within a second on a running server without
a query per request; a key not among them is looked up by its hash at once, so a key just
made by `api-key create` works on its first request.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..kinds import SCOPES as KIND_SCOPES
from ..storage import ApiKeyRow, MonitorStore, StorageUnavailable
from .errors import ApiError, unavailable

SCOPES = KIND_SCOPES
"""Every scope (kinds.py); write does not imply read: a key that must do both gets both."""

KEY_PREFIX = "sonde_"
REFRESH_SECONDS = 1.0
"""Longest a revoked key keeps working on a running server."""
TOUCH_SECONDS = 60.0
"""last_used_at is written at most once a minute per key: a busy client adds no writes."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def new_key() -> str:
    """256 random bits, URL-safe: `sonde_` and 43 characters."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyChecker:
    """Answers "which key is this, and may it do that?" for one store."""

    def __init__(self, store: MonitorStore) -> None:
        self.store = store
        self._keys: list[ApiKeyRow] = []
        self._loaded_at = -1e9
        self._touched: dict[str, float] = {}

    async def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._loaded_at >= REFRESH_SECONDS:
            self._keys = await self.store.all_keys()
            self._loaded_at = now

    def _match(self, digest: bytes) -> ApiKeyRow | None:
        """Compare against every key, always all of them: the time taken says nothing
        about which key, or how much of one, matched."""
        found = None
        for row in self._keys:
            if hmac.compare_digest(row.hash, digest):
                found = row
        return found

    async def check(self, request: web.Request, scope: str) -> ApiKeyRow:
        """The request's key if it has `scope`; else ApiError 401 (no or unknown key) or 403
        (a key without the scope)."""
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise _unauthorized("send an API key as Authorization: Bearer <key>")
        digest = key_hash(key.strip())
        try:
            await self._refresh()
            row = self._match(digest)
            if row is None:  # maybe a new key: an indexed lookup of its hash says
                new = await self.store.find_key(digest)
                if new is not None:
                    await self._refresh(force=True)
                    row = self._match(digest)
        except StorageUnavailable as exc:
            raise unavailable(exc) from None
        if row is None:
            raise _unauthorized("the API key is not valid (unknown or revoked)")
        if scope not in row.scopes:
            raise ApiError(403, "FORBIDDEN", f"the API key lacks the scope {scope}")
        self._touch(row.name)  # a refused key leaves no trace in the database
        return row

    def _touch(self, name: str) -> None:
        now = time.time()
        if now - self._touched.get(name, 0.0) < TOUCH_SECONDS:
            return
        self._touched[name] = now
        # Not awaited: a lost write (the database busy or gone) only makes last use older.
        self.store.touch_key(name, now).add_done_callback(_ignore_outcome)

    def guard(self, scope: str) -> Callable[[Handler], Handler]:
        """Wrap a handler so it runs only for a key with `scope` (errors as the envelope)."""

        def wrap(handler: Handler) -> Handler:
            async def guarded(request: web.Request) -> web.StreamResponse:
                try:
                    await self.check(request, scope)
                except ApiError as exc:
                    return exc.response()
                return await handler(request)

            return guarded

        return wrap


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message, {"WWW-Authenticate": "Bearer"})


def _ignore_outcome(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
