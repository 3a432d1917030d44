"""The five endpoints of a monitor kind, written once: list, create, read, update (only the
fields sent change), delete (with the whole history), and the results page.

Every refusal is decided before anything is written, so a refused request leaves the
database as it was. Order of checks: the key (401), its scope (403), the ID (404), the
body (400): neither 401 nor 403 says whether a monitor exists.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from ..config.monitors import check_timeout_fits
from ..monitors.engine import MonitorEngine
from ..monitors.identity import kind_of, new_monitor_id
from ..monitors.overrides import OverrideError
from ..monitors.plan import PlanError
from ..monitors.target_check import filter_refusal
from ..storage import MonitorRecord, StorageUnavailable
from ..storage.secrets import SecretBox, SecretError
from .auth import KeyChecker
from .body import json_object, only_query, page
from .errors import ApiError, describe, invalid, not_found, unavailable
from .fields import resolve_status
from .kinds import Kind

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class MonitorApi:
    """The endpoints of one kind over the engine; `secrets` seals write-only fields."""

    def __init__(
        self,
        kind: Kind,
        engine: MonitorEngine,
        keys: KeyChecker,
        limit: int,
        secrets: Callable[[], SecretBox],
    ) -> None:
        self.kind = kind
        self.engine = engine
        self.keys = keys
        self.limit = limit
        self.secrets = secrets
        self._creating = 0
        """Creates written but not yet applied: they count against the limit."""

    def add_routes(self, app: web.Application) -> None:
        path = self.kind.path
        read, write = self.kind.read_scope, self.kind.write_scope
        app.router.add_get(path, self._endpoint(read, self.list))
        app.router.add_post(path, self._endpoint(write, self.create))
        app.router.add_get(path + "/{id}", self._endpoint(read, self.get))
        app.router.add_put(path + "/{id}", self._endpoint(write, self.update))
        app.router.add_delete(path + "/{id}", self._endpoint(write, self.delete))
        app.router.add_get(
            path + "/{id}/results", self._endpoint(read, self.results, query=("limit", "offset"))
        )

    def _endpoint(self, scope: str, handler: Handler, query: tuple[str, ...] = ()) -> Handler:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            try:
                await self.keys.check(request, scope)
                only_query(request, *query)
                if not self.engine.ready:
                    raise unavailable()
                return await handler(request)
            except ApiError as exc:
                return exc.response()
            except StorageUnavailable as exc:
                return unavailable(exc).response()

        return endpoint

    # --- the endpoints ----------------------------------------------------------------------

    async def list(self, request: web.Request) -> web.Response:
        records = [r for r in list(self.engine.records.values()) if self.kind.owns(r)]
        return _json({"data": [self._render(r) for r in records]})

    async def get(self, request: web.Request) -> web.Response:
        return _json({"data": self._render(self._record(request))})

    async def create(self, request: web.Request) -> web.Response:
        sent = await json_object(request)
        now = time.time()
        record = self._validated(sent, None, new_monitor_id(self.kind.name), now)
        await self._filter_allows(record, None)
        # The count and the reservation happen with no await in between, so creates that
        # run at once (and share a commit) never pass the limit together.
        count = sum(1 for r in list(self.engine.records.values()) if self.kind.owns(r))
        if count + self._creating >= self.limit:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"the maximum number of {self.kind.title} monitors ({self.limit}, "
                "--monitors.limit) is reached",
            )
        self._creating += 1
        try:
            stored = await self.engine.save(record, new=True)
        finally:
            self._creating -= 1
        return _json({"data": self._render(stored)}, status=201)

    async def update(self, request: web.Request) -> web.Response:
        old = self._record(request)
        sent = await json_object(request)
        record = self._validated(sent, old, old.id, time.time())
        await self._filter_allows(record, old)
        try:
            stored = await self.engine.save(record, new=False)
        except LookupError:  # deleted while this request was read
            raise self._gone(old.id) from None
        return _json({"data": self._render(stored)})

    async def delete(self, request: web.Request) -> web.Response:
        old = self._record(request)
        if not await self.engine.delete(old.id):
            raise self._gone(old.id)
        return web.Response(status=204)

    async def results(self, request: web.Request) -> web.Response:
        old = self._record(request)
        limit, offset = page(request)
        found = await self.engine.results(old.id, limit, offset)
        if found is None:
            raise self._gone(old.id)
        rows, total = found
        return _json(
            {
                "data": [self.kind.render_result(r) for r in rows],
                "pagination": {"total": total, "limit": limit, "offset": offset},
            }
        )

    # --- validation -------------------------------------------------------------------------

    def _record(self, request: web.Request) -> MonitorRecord:
        monitor_id = request.match_info["id"]
        prefix = f"{self.kind.name}m_"
        if kind_of(monitor_id) != self.kind.name:
            raise not_found(
                f"id: {monitor_id[:80]!r} is not a {self.kind.title} monitor ID ({prefix}…)"
            )
        record = self.engine.records.get(monitor_id)
        if record is None or not self.kind.owns(record):
            raise self._gone(monitor_id)
        return record

    def _gone(self, monitor_id: str) -> ApiError:
        return not_found(f"id: no {self.kind.title} monitor {monitor_id[:80]}")

    def _validated(
        self, sent: dict[str, Any], old: MonitorRecord | None, monitor_id: str, now: float
    ) -> MonitorRecord:
        """The record a create or update body makes, or ApiError 400 naming every bad field."""
        merged = sent
        if old is not None:  # an update: the fields sent over the stored ones
            current = self.kind.body(old)
            if "status" in sent or "isEnabled" in sent:
                current.pop("status")
            merged = {**current, **sent}
        try:
            body = self.kind.model.model_validate_json(json.dumps(merged))
        except ValidationError as exc:
            raise invalid(describe(exc)) from None
        try:
            status = resolve_status(body.status, body.isEnabled, old.status if old else None)
        except ValueError as exc:
            raise invalid(f"isEnabled: {exc}") from None
        record = self.kind.record(body, status, now, old, monitor_id)
        try:
            check_timeout_fits(body.timeoutMs / 1000, body.intervalSeconds)
        except ValueError as exc:
            raise invalid(f"timeoutMs: {body.timeoutMs} ms: {exc}") from None
        record = self._seal(record, sent, old)
        if old is not None and self._stays_unrunnable(record, old):
            return record
        config, planner = self.engine.config, self.engine.planner
        try:
            planner.api_module(record, config)
            planner.plan(record, config)
        except OverrideError as exc:
            raise invalid(f"{exc.field}: {exc.message}") from None
        except PlanError as exc:
            raise invalid(f"{self.kind.fields[0]}: {exc}") from None
        return record

    def _stays_unrunnable(self, record: MonitorRecord, old: MonitorRecord) -> bool:
        """Whether the monitor cannot run with the config in force (its module was removed
        from config.yml) and the update leaves what its module is built from as stored: it is
        taken (so such a monitor can still be disabled, renamed or tagged) and the monitor
        stays not runnable, for the reason the engine keeps."""
        return old.id in self.engine.plan_errors and _module_inputs(record) == _module_inputs(old)

    async def _filter_allows(self, record: MonitorRecord, old: MonitorRecord | None) -> None:
        """400 when the module's ip_filter refuses the target or the mailbox (docs/security.md,
        IP filter); nothing to judge for a monitor that stays unable to run."""
        if old is not None and self._stays_unrunnable(record, old):
            return
        refusal = await filter_refusal(self.engine.planner.plan(record, self.engine.config))
        if refusal is not None:
            field = self.kind.mailbox if refusal.mailbox else self.kind.fields[0]
            raise invalid(f"{field}: {refusal.message}")

    def _seal(
        self, record: MonitorRecord, sent: dict[str, Any], old: MonitorRecord | None
    ) -> MonitorRecord:
        """Seal the write-only fields just sent; those not sent stay as stored."""
        if not self.kind.write_only:
            return record
        spec = dict(record.spec)
        for field in self.kind.write_only:
            if field not in sent and old is not None:
                spec[field] = old.spec[field]
                continue
            try:
                spec[field] = self.secrets().seal(spec[field])
            except (OSError, SecretError) as exc:
                raise unavailable(f"cannot store passwords: {exc}") from None
        return dataclasses.replace(record, spec=spec)

    def _render(self, record: MonitorRecord) -> dict[str, Any]:
        state = self.engine.states.get(record.id)
        return self.kind.render(record, None if state is None else state.last)


def _module_inputs(record: MonitorRecord) -> tuple[Any, ...]:
    """What a monitor's module and plan are built from: not its name, status or tags."""
    spec = {k: v for k, v in record.spec.items() if k != "tags"}
    return (record.kind, record.module, record.target, record.timeout, spec)


def _json(data: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(data, status=status)
