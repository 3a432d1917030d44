"""Every /v1 answer is JSON: the router's 404 and 405 as the envelope, unknown query
parameters refused, whole numbers written as 1.0 taken as integers, and a timeout longer than
the interval refused as in config.yml (also by a PUT that changes only the interval)."""

from __future__ import annotations

import pytest
from api_harness import Api, start_api


@pytest.fixture
async def api(aiohttp_client, tmp_path) -> Api:  # type: ignore[no-untyped-def]
    return await start_api(aiohttp_client, tmp_path, scheduler=False)


@pytest.mark.parametrize(
    "path", ["/v1//tcp-monitors", "/V1/tcp-monitors", "/v1/tcp-monitors/", "/v1", "/v1/x"]
)
async def test_unknown_paths_are_404_envelopes(api: Api, path: str) -> None:
    response = await api.client.get(path, headers=api.headers())
    assert response.status == 404
    assert response.content_type == "application/json"
    error = (await response.json())["error"]
    assert error["code"] == "NOT_FOUND" and "no such endpoint" in error["message"]


async def test_method_not_allowed_is_an_envelope_with_allow(api: Api) -> None:
    response = await api.client.patch("/v1/tcp-monitors", headers=api.headers())
    assert response.status == 405
    assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}
    assert (await response.json())["error"]["code"] == "NOT_FOUND"


async def test_other_paths_keep_plain_text(api: Api) -> None:
    response = await api.client.get("/nothing")
    assert (response.status, response.content_type) == (404, "text/plain")


async def test_list_refuses_unknown_query_parameters(api: Api) -> None:
    status, answer = await api.call("GET", "/v1/tcp-monitors?colour=red")
    assert status == 400
    assert answer["error"]["message"].startswith("'colour': unknown query parameter")


async def test_whole_numbers_with_a_point_are_integers(api: Api) -> None:
    body = {"name": "n", "host": "127.0.0.1", "port": 80.0, "intervalSeconds": 3e1}
    created = await api.create("tcp", body)
    assert (created["port"], created["intervalSeconds"]) == (80, 30)
    status, answer = await api.call("POST", "/v1/tcp-monitors", {**body, "port": 80.5})
    assert status == 400 and answer["error"]["message"].startswith("port:")


async def test_timeout_longer_than_interval_is_refused(api: Api) -> None:
    body = {"name": "n", "host": "127.0.0.1", "port": 80, "intervalSeconds": 10}
    before = api.snapshot()
    status, answer = await api.call("POST", "/v1/tcp-monitors", {**body, "timeoutMs": 60000})
    assert status == 400
    assert answer["error"]["message"].startswith("timeoutMs: 60000 ms: 60s is longer than")
    assert api.snapshot() == before
    created = await api.create("tcp", {**body, "intervalSeconds": 60, "timeoutMs": 30000})
    status, answer = await api.call(
        "PUT", f"/v1/tcp-monitors/{created['id']}", {"intervalSeconds": 20}
    )
    assert status == 400 and answer["error"]["message"].startswith("timeoutMs: 30000 ms")
    _, stored = await api.call("GET", f"/v1/tcp-monitors/{created['id']}")
    assert (stored["data"]["timeoutMs"], stored["data"]["intervalSeconds"]) == (30000, 60)


@pytest.mark.parametrize(
    "host", ["::1%\n", "fe80::1%a b", "fe80::1%eth0/24", "fe80::1%" + "x" * 16]
)
async def test_a_zone_id_is_an_interface_name_or_index(api: Api, host: str) -> None:
    """Not whatever ipaddress reads after the `%`: no control character, space or slash rides
    into a log line or a URL inside a zone."""
    before = api.snapshot()
    status, answer = await api.call(
        "POST", "/v1/tcp-monitors", {"name": "z", "host": host, "port": 22}
    )
    assert status == 400 and answer["error"]["message"].startswith("host: ")
    status, answer = await api.call("POST", "/v1/icmp-monitors", {"name": "z", "host": host})
    assert status == 400 and answer["error"]["message"].startswith("host: ")
    assert api.snapshot() == before


async def test_a_zone_id_that_names_an_interface_is_taken(api: Api) -> None:
    await api.create("icmp", {"name": "zoned", "host": "fe80::1%lo"})
    await api.create("tcp", {"name": "zoned", "host": "fe80::1%1", "port": 22})
