"""Hypothesis fuzzing of every management API endpoint: whatever the method, path, ID, query,
headers and body, the answer is never a 5xx or a traceback, an error is the envelope, and a
refused request leaves the database exactly as it was.

The server runs in a thread with its own event loop, on a real loopback socket, with the
scheduler off: fuzzed monitors are stored and planned but never probed (and this process's
loopback guard would refuse any name or address off this machine anyway).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from api_harness import ALL_SCOPES, CONFIG, Api, create_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sonde_exporter.app import build_app
from sonde_exporter.exporter import Exporter
from sonde_exporter.monitors.options import MonitorOptions

CODES = {"VALIDATION_ERROR", "LIMIT_EXCEEDED", "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND"}
VALID: dict[str, dict[str, Any]] = {
    "tcp": {"name": "t", "host": "127.0.0.1", "port": 1},
    "icmp": {"name": "i", "host": "127.0.0.1"},
    "email": {
        "name": "e",
        "smtpUrl": "smtp://127.0.0.1:25",
        "receiveUrl": "imap://127.0.0.1:143",
        "email": "p@example.com",
        "username": "u",
        "password": "pw",
    },
}
FIELDS = sorted(
    {f for body in VALID.values() for f in body}
    | {
        "timeoutMs",
        "intervalSeconds",
        "isEnabled",
        "status",
        "module",
        "retries",
        "data",
        "degradedResponseTimeMs",
        "maxResponseTimeMs",
        "shouldFail",
        "assertions",
        "ipFamily",
        "tracerouteOnError",
        "tags",
        "packetSize",
        "count",
        "from",
        "id",
        "createdAt",
    }
)


class Served:
    """The server in a thread, and an Api for keys and database snapshots."""

    def __init__(self, tmp: Path) -> None:
        self.db = tmp / "data" / "sonde.db"
        self.full = create_key(self.db, "all", ALL_SCOPES)
        self.reader = create_key(self.db, "reader", ["tcp-monitors:read"])
        (tmp / "config.yml").write_text(CONFIG)
        options = MonitorOptions(storage_path=str(self.db), scheduler=False, limit=30)
        self.exporter = Exporter.from_file(tmp / "config.yml", monitors=options)
        self.loop = asyncio.new_event_loop()
        self.port = 0
        started = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self.thread.start()
        assert started.wait(30)
        self.snapshot = Api.snapshot.__get__(self)  # type: ignore[attr-defined]

    def _serve(self, started: threading.Event) -> None:
        from aiohttp import web

        asyncio.set_event_loop(self.loop)
        runner = web.AppRunner(build_app(self.exporter))
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = runner.addresses[0][1]
        self.runner = runner
        started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(runner.cleanup())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)

    def request(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read().decode()
        finally:
            conn.close()

    def ids(self, kind: str) -> list[str]:
        return [m.id for m in list(self.exporter.monitors.records.values()) if m.kind == kind]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = Served(tmp_path_factory.mktemp("api-fuzz"))
    yield server
    server.stop()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=300),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def bodies(draw: st.DrawFn, kind: str) -> bytes | None:
    shape = draw(st.sampled_from(["valid-ish", "fields", "raw", "none", "json"]))
    if shape == "none":
        return None
    if shape == "raw":
        return draw(st.binary(max_size=200))
    if shape == "json":
        return json.dumps(draw(json_values)).encode()
    body = dict(VALID[kind]) if shape == "valid-ish" else {}
    for field in draw(st.lists(st.sampled_from(FIELDS) | st.text(max_size=10), max_size=4)):
        if draw(st.booleans()):
            body[field] = draw(json_values)
        else:
            body.pop(field, None)
    return json.dumps(body).encode()


@st.composite
def requests(draw: st.DrawFn, served: Served) -> tuple[str, str, bytes | None, dict[str, str]]:
    kind = draw(st.sampled_from(list(VALID)))
    other = draw(st.sampled_from(list(VALID)))
    ids = served.ids(other)
    monitor_id = draw(
        (st.sampled_from(ids) if ids else st.just(f"{kind}m_none"))
        | st.text(max_size=20)
        | st.just(f"{kind}m_0")
    )
    monitor_id = quote(monitor_id, safe="")  # any text, sent as the client must
    query = draw(
        st.sampled_from(["", "?limit=0", "?limit=200", "?offset=-1", "?limit=abc", "?x=1"])
        | st.text(alphabet="limitofset=&0123456789-abc", max_size=30).map(lambda q: "?" + q)
    )
    base = f"/v1/{kind}-monitors"
    path = draw(
        st.sampled_from(
            [
                base,
                f"{base}/{monitor_id}",
                f"{base}/{monitor_id}/results{query}",
                "/v1/sd",
                "/v1/openapi.json",
            ]
        )
    )
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
    headers: dict[str, str] = {}
    key = draw(st.sampled_from([served.full, served.full, served.reader, None, "sonde_x"]))
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    content_type = draw(
        st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", None])
    )
    if content_type is not None:
        headers["Content-Type"] = content_type
    body = draw(bodies(kind)) if method in ("POST", "PUT") else None
    if body is not None and draw(st.integers(0, 30)) == 0:
        body += b" " * (70 * 1024)  # over the size limit
    return method, path, body, headers


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_request_gets_a_5xx_or_changes_the_database_when_refused(
    served: Served, data: st.DataObject
) -> None:
    method, path, body, headers = data.draw(requests(served))
    before = served.snapshot()
    status, content_type, text = served.request(method, path, body, headers)
    assert status < 500, (status, text)
    assert "Traceback" not in text
    if status >= 400:
        assert served.snapshot() == before, (method, path, status, text)
        if content_type.startswith("application/json"):
            error = json.loads(text)["error"]
            assert error["code"] in CODES and error["message"]
            assert "\n" not in error["message"]
