"""/v1/openapi.json describes what the server really answers: every endpoint of every kind
is called (successes and errors) and each body is validated against the document's schema
for that operation and status."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest
from api_harness import Api, create_key, start_api

from sonde_exporter.storage import ResultRecord

BODIES = {
    "tcp": {"name": "t", "host": "127.0.0.1", "port": 1, "tags": ["a"]},
    "icmp": {"name": "i", "host": "127.0.0.1"},
    "email": {
        "name": "e",
        "smtpUrl": "smtps://127.0.0.1:465",
        "receiveUrl": "pop3s://127.0.0.1:995",
        "email": "p@example.com",
        "username": "u",
        "password": "pw",
    },
}
DETAILS = {
    "tcp": {},
    "icmp": {
        "packets_sent": 3,
        "packets_received": 2,
        "packet_loss": 1 / 3,
        "rtt_min": 0.0001,
        "rtt_avg": 0.0002,
        "rtt_max": 0.0003,
    },
    "email": {"delivery_time": 1.25},
}


@pytest.fixture
async def api(aiohttp_client, tmp_path) -> Api:  # type: ignore[no-untyped-def]
    return await start_api(aiohttp_client, tmp_path, scheduler=False)


class Checker:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.seen: set[tuple[str, str, str]] = set()

    def check(self, method: str, path: str, status: int, body: Any) -> None:
        template = next(
            p
            for p in self.doc["paths"]
            if re.fullmatch(re.sub(r"\{id\}", "[^/]+", p), path.split("?")[0])
        )
        answers = self.doc["paths"][template][method.lower()]["responses"]
        assert str(status) in answers, (method, path, status, body)
        answer = answers[str(status)]
        self.seen.add((method, template, str(status)))
        if "content" not in answer:
            assert body is None
            return
        schema = answer["content"]["application/json"]["schema"]
        jsonschema.validate(
            body,
            {**schema, "components": self.doc["components"]},
            format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
        )


async def test_real_answers_match_the_document(api: Api) -> None:
    status, doc = await api.call("GET", "/v1/openapi.json", key="")
    assert status == 200
    assert doc["openapi"] == "3.1.0"
    jsonschema.Draft202012Validator.check_schema(doc["components"]["schemas"]["TCPMonitor"])
    checker = Checker(doc)
    nobody = create_key(api.db, "nobody", ["sd:read"])

    async def call(method: str, path: str, body: Any = None, key: str | None = None) -> Any:
        status, answer = await api.call(method, path, body, key=key)
        checker.check(method, path, status, answer)
        return answer

    for kind, body in BODIES.items():
        base = f"/v1/{kind}-monitors"
        created = (await call("POST", base, body))["data"]
        await call("POST", base, {**body, "name": ""})
        await call("POST", base, {**body, "bogus": 1})
        await call("POST", base, body, key="sonde_wrong")
        await call("POST", base, body, key=nobody)
        await call("GET", base)
        await call("GET", base, key=nobody)
        one = f"{base}/{created['id']}"
        await call("GET", one)
        await call("GET", f"{base}/{kind}m_missing")
        await call("PUT", one, {"name": "renamed", "status": "maintenance"})
        await call("PUT", one, {"timeoutMs": 1})
        await call("PUT", f"{base}/{kind}m_missing", {})
        for status in ("up", "down", "timeout"):
            result = ResultRecord(
                monitor_id=created["id"],
                checked_at=1.7e9,
                status=status,  # type: ignore[arg-type]
                response_time=0.01 if status == "up" else None,
                reason=None if status == "up" else "connect_refused",
                error=None if status == "up" else "connection refused",
                attempts=2,
                degraded=status == "up",
                details=DETAILS[kind],
            )
            await api.exporter.monitors.store.add_result(result)
        page = await call("GET", f"{one}/results?limit=2")
        assert len(page["data"]) == 2
        await call("GET", f"{one}/results?limit=0")
        await call("GET", f"{base}/{kind}m_missing/results")
        await call("DELETE", one)
        await call("DELETE", one)
    for kind in BODIES:
        for template in (
            f"/v1/{kind}-monitors",
            f"/v1/{kind}-monitors/{{id}}",
            f"/v1/{kind}-monitors/{{id}}/results",
        ):
            assert any(t == template and s.startswith("2") for _, t, s in checker.seen), template


async def test_request_schemas_are_the_validated_models(api: Api) -> None:
    _, doc = await api.call("GET", "/v1/openapi.json")
    schemas = doc["components"]["schemas"]
    for kind, body in BODIES.items():
        title = {"tcp": "TCP", "icmp": "ICMP", "email": "Email"}[kind]
        create = {**schemas[f"{title}MonitorCreate"], "components": doc["components"]}
        update = {**schemas[f"{title}MonitorUpdate"], "components": doc["components"]}
        jsonschema.validate(body, create)
        jsonschema.validate({}, update)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**body, "unknown": 1}, create)  # additionalProperties: false
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({}, create)
