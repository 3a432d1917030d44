"""The TCP monitor API against every row of the contract (shared monitor-api-reference.md,
section 1): endpoints, scopes, codes, ranges at their boundaries, defaults, ID patterns,
PUT's partial update, DELETE with the history, and results paging. A real server, a real
SQLite file, keys from the real CLI; the scheduler is off so that only the test writes
results (test_api_engine.py runs real checks)."""

from __future__ import annotations

import asyncio
import calendar
import re
import time
from typing import Any

import pytest
from api_harness import Api, create_key, start_api

from sonde_exporter.storage import ResultRecord

TCP = "/v1/tcp-monitors"
DATE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
CONTRACT_FIELDS = {
    "id",
    "name",
    "host",
    "port",
    "timeoutMs",
    "intervalSeconds",
    "isEnabled",
    "lastCheckedAt",
    "lastStatus",
    "lastResponseTimeMs",
    "createdAt",
    "updatedAt",
}
VALID = {"name": "web", "host": "127.0.0.1", "port": 8080}


@pytest.fixture
async def api(aiohttp_client, tmp_path) -> Api:  # type: ignore[no-untyped-def]
    return await start_api(aiohttp_client, tmp_path, scheduler=False, limit=5)


def error_of(answer: Any, code: str) -> str:
    assert set(answer) == {"error"}
    assert answer["error"]["code"] == code
    message: str = answer["error"]["message"]
    assert message
    return message


async def add_results(api: Api, monitor_id: str, statuses: list[str]) -> None:
    """Write results as the engine's checks would, oldest first, a minute apart: all queued
    at once, so that they share commits as checks do (one by one, each would wait out the
    writer's 100 ms linger: 1,440 took 144 s)."""
    start = time.time() - 60 * len(statuses)
    results = [
        ResultRecord(
            monitor_id=monitor_id,
            checked_at=start + 60 * n,
            status=status,  # type: ignore[arg-type]
            response_time=0.012 if status == "up" else None,
            reason=None
            if status == "up"
            else "connect_timeout"
            if status == "timeout"
            else "connection_refused",
            error=None if status == "up" else "Connection refused",
        )
        for n, status in enumerate(statuses)
    ]
    store = api.exporter.monitors.store
    await asyncio.gather(*(store.add_result(result) for result in results))


# --- POST /v1/tcp-monitors ----------------------------------------------------------------


async def test_create_answers_201_with_the_contract_defaults(api: Api) -> None:
    before = time.time()
    status, answer = await api.call("POST", TCP, VALID)
    assert status == 201
    monitor = answer["data"]
    assert set(monitor) >= CONTRACT_FIELDS
    assert re.fullmatch(r"tcpm_[a-zA-Z0-9]+", monitor["id"])
    assert {k: monitor[k] for k in ("name", "host", "port")} == VALID
    assert monitor["timeoutMs"] == 5000
    assert monitor["intervalSeconds"] == 60
    assert monitor["isEnabled"] is True
    assert monitor["lastCheckedAt"] is None
    assert monitor["lastStatus"] is None
    assert monitor["lastResponseTimeMs"] is None
    for field in ("createdAt", "updatedAt"):
        assert DATE_TIME.match(monitor[field])
        stamp = calendar.timegm(time.strptime(monitor[field], "%Y-%m-%dT%H:%M:%SZ"))
        assert before - 1 <= stamp <= time.time() + 1
    # the extra fields: set to their defaults, which a contract client ignores
    assert monitor["status"] == "active"
    assert monitor["module"] == "tcp"


async def test_created_monitor_lists_and_reads_back(api: Api) -> None:
    created = await api.create("tcp", VALID)
    status, answer = await api.call("GET", TCP)
    assert status == 200
    assert answer == {"data": [created]}
    status, answer = await api.call("GET", f"{TCP}/{created['id']}")
    assert (status, answer) == (200, {"data": created})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "n" * 255),
        ("name", "x"),
        ("host", "h" * 63 + "." + "h" * 63 + "." + "h" * 63 + "." + "h" * 61),
        ("host", "::1"),
        ("host", "example.com"),
        ("port", 1),
        ("port", 65535),
        ("timeoutMs", 100),
        ("timeoutMs", 60000),
        ("intervalSeconds", 10),
        ("intervalSeconds", 86400),
        ("isEnabled", False),
    ],
)
async def test_create_accepts_each_range_boundary(api: Api, field: str, value: Any) -> None:
    monitor = await api.create("tcp", {**VALID, field: value})
    assert monitor[field] == value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "n" * 256),
        ("name", 5),
        ("name", None),
        ("host", ""),
        ("host", "h" * 256),
        ("host", "not a host"),
        ("host", "https://example.com"),
        ("host", 12),
        ("port", 0),
        ("port", 65536),
        ("port", "80"),
        ("port", 80.5),
        ("port", True),
        ("timeoutMs", 99),
        ("timeoutMs", 60001),
        ("timeoutMs", "5000"),
        ("intervalSeconds", 9),
        ("intervalSeconds", 86401),
        ("intervalSeconds", None),
        ("isEnabled", "yes"),
        ("isEnabled", 1),
    ],
)
async def test_create_refuses_each_bad_value_naming_the_field(
    api: Api, field: str, value: Any
) -> None:
    status, answer = await api.call("POST", TCP, {**VALID, field: value})
    assert status == 400
    assert error_of(answer, "VALIDATION_ERROR").startswith(f"{field}:")
    assert [row for row in api.snapshot() if row[0] != "key"] == []


@pytest.mark.parametrize("field", ["name", "host", "port"])
async def test_create_requires_name_host_and_port(api: Api, field: str) -> None:
    body = {k: v for k, v in VALID.items() if k != field}
    status, answer = await api.call("POST", TCP, body)
    assert status == 400
    assert error_of(answer, "VALIDATION_ERROR") == f"{field}: required"


async def test_create_refuses_an_unknown_field(api: Api) -> None:
    status, answer = await api.call("POST", TCP, {**VALID, "hostname": "x"})
    assert status == 400
    assert error_of(answer, "VALIDATION_ERROR") == "hostname: unknown field"


async def test_a_validation_message_names_every_bad_field(api: Api) -> None:
    status, answer = await api.call("POST", TCP, {"name": "", "port": 0, "colour": "red"})
    assert status == 400
    message = error_of(answer, "VALIDATION_ERROR")
    for field in ("name:", "host: required", "port:", "colour: unknown field"):
        assert field in message


async def test_create_past_the_limit_is_limit_exceeded(api: Api) -> None:
    for n in range(5):  # the fixture's --monitors.limit
        await api.create("tcp", {**VALID, "name": f"m{n}"})
    await api.create("icmp", {"name": "other kind", "host": "127.0.0.1"})  # counted apart
    before = api.snapshot()
    status, answer = await api.call("POST", TCP, VALID)
    assert status == 400
    assert "5" in error_of(answer, "LIMIT_EXCEEDED")
    assert api.snapshot() == before
    # deleting one makes room again
    first = (await api.call("GET", TCP))[1]["data"][0]["id"]
    assert (await api.call("DELETE", f"{TCP}/{first}"))[0] == 204
    await api.create("tcp", VALID)


# --- auth: 401 and 403 on every endpoint -----------------------------------------------------


ENDPOINTS = [
    ("GET", TCP, "tcp-monitors:read"),
    ("POST", TCP, "tcp-monitors:write"),
    ("GET", f"{TCP}/{{id}}", "tcp-monitors:read"),
    ("PUT", f"{TCP}/{{id}}", "tcp-monitors:write"),
    ("DELETE", f"{TCP}/{{id}}", "tcp-monitors:write"),
    ("GET", f"{TCP}/{{id}}/results", "tcp-monitors:read"),
]


@pytest.mark.parametrize(("method", "path", "scope"), ENDPOINTS)
async def test_every_endpoint_needs_its_scope(api: Api, method: str, path: str, scope: str) -> None:
    monitor = await api.create("tcp", VALID)
    url = path.format(id=monitor["id"])
    body = VALID if method in ("POST", "PUT") else None
    others = [s for s in api_scopes() if s != scope]
    key = create_key(api.db, "others", others)
    before = api.snapshot()
    # no key, a malformed header, an unknown key: 401 with the envelope
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer sonde_nope"}):
        response = await api.client.request(method, url, json=body, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        error_of(await response.json(), "UNAUTHORIZED")
    # a valid key with every other scope: 403, for a monitor that exists and one that does not
    for target in (url, path.format(id="tcpm_doesnotexist")):
        status, answer = await api.call(method, target, body, key=key)
        assert status == 403
        assert scope in error_of(answer, "FORBIDDEN")
    assert api.snapshot() == before
    # and with the scope alone it works
    key = create_key(api.db, "only", [scope])
    status, _ = await api.call(method, url, body, key=key)
    assert status in (200, 201, 204)


def api_scopes() -> list[str]:
    from sonde_exporter.api.auth import SCOPES

    return list(SCOPES)


# --- GET /v1/tcp-monitors/:id ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("monitor_id", ["tcpm_abc123", "icmpm_abc123", "tcpr_1", "nonsense"])
async def test_an_unknown_or_wrong_kind_id_is_404(api: Api, method: str, monitor_id: str) -> None:
    await api.create("tcp", VALID)
    icmp = await api.create("icmp", {"name": "i", "host": "127.0.0.1"})
    for target in (monitor_id, icmp["id"]):
        body = {"name": "x"} if method == "PUT" else None
        status, answer = await api.call(method, f"{TCP}/{target}", body)
        assert status == 404
        assert error_of(answer, "NOT_FOUND").startswith("id:")
    status, _ = await api.call("GET", f"{TCP}/{monitor_id}/results")
    assert status == 404


# --- PUT /v1/tcp-monitors/:id ---------------------------------------------------------------


async def test_put_changes_only_the_fields_sent(api: Api) -> None:
    created = await api.create("tcp", {**VALID, "timeoutMs": 2000, "intervalSeconds": 30})
    await asyncio.sleep(1.01)  # updatedAt has whole seconds
    status, answer = await api.call("PUT", f"{TCP}/{created['id']}", {"port": 9090})
    assert status == 200
    updated = answer["data"]
    assert updated["port"] == 9090
    assert updated["updatedAt"] > created["updatedAt"]
    unchanged = {k: v for k, v in created.items() if k not in ("port", "updatedAt")}
    assert {k: updated[k] for k in unchanged} == unchanged
    assert (await api.call("GET", f"{TCP}/{created['id']}"))[1]["data"] == updated


async def test_put_with_an_empty_body_changes_nothing_but_updated_at(api: Api) -> None:
    created = await api.create("tcp", VALID)
    status, answer = await api.call("PUT", f"{TCP}/{created['id']}", {})
    assert status == 200
    assert {k: v for k, v in answer["data"].items() if k != "updatedAt"} == {
        k: v for k, v in created.items() if k != "updatedAt"
    }


@pytest.mark.parametrize(
    "body",
    [
        {"port": 0},
        {"timeoutMs": 60001},
        {"intervalSeconds": 9},
        {"name": None},
        {"name": ""},
        {"unknown": 1},
        {"isEnabled": "false"},
    ],
)
async def test_put_refuses_bad_fields_and_changes_nothing(api: Api, body: dict[str, Any]) -> None:
    created = await api.create("tcp", VALID)
    before = api.snapshot()
    status, answer = await api.call("PUT", f"{TCP}/{created['id']}", body)
    assert status == 400
    assert error_of(answer, "VALIDATION_ERROR").startswith(next(iter(body)))
    assert api.snapshot() == before


# --- DELETE /v1/tcp-monitors/:id ------------------------------------------------------------


async def test_delete_answers_204_and_takes_the_history_with_it(api: Api) -> None:
    kept = await api.create("tcp", {**VALID, "name": "kept"})
    gone = await api.create("tcp", VALID)
    await add_results(api, gone["id"], ["up", "down"])
    await add_results(api, kept["id"], ["up"])
    response = await api.client.delete(f"{TCP}/{gone['id']}", headers=api.headers())
    assert response.status == 204
    assert await response.read() == b""
    assert (await api.call("GET", f"{TCP}/{gone['id']}"))[0] == 404
    assert (await api.call("GET", f"{TCP}/{gone['id']}/results"))[0] == 404
    assert (await api.call("DELETE", f"{TCP}/{gone['id']}"))[0] == 404
    tables = {row[0] for row in api.snapshot() if row[0] != "key"}
    rows = [row for row in api.snapshot() if row[0] == "monitors"]
    assert [row[2] for row in rows] == [kept["id"]]
    assert tables == {"monitors", "results", "rollups"}
    assert len([row for row in api.snapshot() if row[0] == "results"]) == 1  # kept's only


# --- GET /v1/tcp-monitors/:id/results -------------------------------------------------------


async def test_results_page_newest_first_with_the_total(api: Api) -> None:
    monitor = await api.create("tcp", VALID)
    statuses = ["up", "down", "timeout"] * 20  # 60 results, the newest a timeout
    await add_results(api, monitor["id"], statuses)
    status, answer = await api.call("GET", f"{TCP}/{monitor['id']}/results")
    assert status == 200
    assert answer["pagination"] == {"total": 60, "limit": 50, "offset": 0}
    results = answer["data"]
    assert len(results) == 50
    times = [r["checkedAt"] for r in results]
    assert times == sorted(times, reverse=True)
    assert [r["status"] for r in results[:3]] == ["timeout", "down", "up"]
    for result in results:
        assert re.fullmatch(r"tcpr_[a-zA-Z0-9]+", result["id"])
        assert DATE_TIME.match(result["checkedAt"])
        if result["status"] == "up":
            assert result["responseTimeMs"] == 12
            assert "error" not in result
        else:
            assert result["responseTimeMs"] is None
            assert result["error"] == "Connection refused"
        assert result["attempts"] == 1
        assert result["degraded"] is False
    assert len({r["id"] for r in results}) == 50
    status, answer = await api.call("GET", f"{TCP}/{monitor['id']}/results?limit=20&offset=50")
    assert answer["pagination"] == {"total": 60, "limit": 20, "offset": 50}
    assert len(answer["data"]) == 10
    status, answer = await api.call("GET", f"{TCP}/{monitor['id']}/results?offset=60")
    assert (status, answer["data"]) == (200, [])


async def test_a_day_of_minutely_checks_totals_1440(api: Api) -> None:
    monitor = await api.create("tcp", VALID)
    await add_results(api, monitor["id"], ["up"] * 1440)
    pages = []
    for offset in range(0, 1440, 200):
        _, answer = await api.call(
            "GET", f"{TCP}/{monitor['id']}/results?limit=200&offset={offset}"
        )
        assert answer["pagination"]["total"] == 1440
        pages += answer["data"]
    assert len({r["id"] for r in pages}) == 1440
    assert [r["checkedAt"] for r in pages] == sorted((r["checkedAt"] for r in pages), reverse=True)


@pytest.mark.parametrize("query", ["limit=1", "limit=200", "offset=0", "limit=1&offset=5"])
async def test_results_accept_the_query_boundaries(api: Api, query: str) -> None:
    monitor = await api.create("tcp", VALID)
    status, _ = await api.call("GET", f"{TCP}/{monitor['id']}/results?{query}")
    assert status == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=", "limit"),
        ("limit=1.5", "limit"),
        ("offset=-1", "offset"),
        ("offset=x", "offset"),
        ("offset=" + "9" * 30, "offset"),
        ("limit=1&limit=2", "limit"),
        ("page=2", "'page'"),
    ],
)
async def test_results_refuse_a_bad_query(api: Api, query: str, field: str) -> None:
    monitor = await api.create("tcp", VALID)
    status, answer = await api.call("GET", f"{TCP}/{monitor['id']}/results?{query}")
    assert status == 400
    assert error_of(answer, "VALIDATION_ERROR").startswith(f"{field}:")


@pytest.mark.parametrize(
    ("data", "content_type", "status", "start"),
    [
        (b'{"name": "x",', "application/json", 400, "body: malformed JSON"),
        (b'{"name": NaN}', "application/json", 400, "body: malformed JSON"),
        (b"[1, 2]", "application/json", 400, "body: must be a JSON object"),
        (b"\xff\xfe", "application/json", 400, "body: not UTF-8"),
        (b"[" * 60_000, "application/json", 400, "body: malformed JSON"),
        (b'{"name": "x"}', "text/plain", 400, "body: Content-Type must be application/json"),
        (b'{"name": "x"}', None, 400, "body: Content-Type must be application/json"),
        (b'{"name": "' + b"x" * 70_000 + b'"}', "application/json", 413, "body: larger than"),
    ],
)
async def test_a_bad_body_is_refused_naming_it(
    api: Api, data: bytes, content_type: str | None, status: int, start: str
) -> None:
    monitor = await api.create("tcp", VALID)
    before = api.snapshot()
    headers = api.headers()
    if content_type is not None:
        headers["Content-Type"] = content_type
    for method, path in (("POST", TCP), ("PUT", f"{TCP}/{monitor['id']}")):
        response = await api.client.request(method, path, data=data, headers=headers)
        assert response.status == status
        assert error_of(await response.json(), "VALIDATION_ERROR").startswith(start)
    assert api.snapshot() == before
