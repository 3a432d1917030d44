"""One rule for which targets a prober takes (probers.accept_target): config.yml's monitors at
load, the API's monitors and /probe refuse the same bad target for the same reason. The API's
TCP host is judged by the host rule alone (api/models.py says why), so its reason is the same
where the host is what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest
from api_harness import Api, start_api

from sonde_exporter.config.errors import ConfigError
from sonde_exporter.config.loader import parse_config
from sonde_exporter.prober_base import TargetError
from sonde_exporter.probers import accept_target
from sonde_exporter.targets import HostPort

CASES = [
    # (prober, API host, port or None, the reason)
    ("tcp", "bad host", 80, "host 'bad host' contains whitespace"),
    ("tcp", "1.2.3.256", 80, "host '1.2.3.256' is not a valid IPv4 address or hostname"),
    ("tcp", "-a.example", 80, "host '-a.example' is not a valid hostname or IP address"),
    ("icmp", "exa mple.com", None, "'exa mple.com' contains whitespace"),
    ("icmp", "example.com:80", None, "'example.com:80' has a port; ICMP targets take no port"),
    ("icmp", "a\x7fb", None, "contains control characters or other non-printable characters"),
]


def _target(host: str, port: int | None) -> str:
    return host if port is None else str(HostPort(host, port))


@pytest.fixture
async def api(aiohttp_client, tmp_path) -> Api:  # type: ignore[no-untyped-def]
    return await start_api(aiohttp_client, tmp_path, scheduler=False)


@pytest.mark.parametrize(("prober", "host", "port", "reason"), CASES)
async def test_config_api_and_probe_refuse_a_target_for_one_reason(
    api: Api, prober: str, host: str, port: int | None, reason: str
) -> None:
    target = _target(host, port)
    with pytest.raises(TargetError) as caught:
        accept_target(prober, target)
    assert str(caught.value) == reason

    monitor = {"name": "m", "module": prober, "target": target, "interval": "1m"}
    config = f"modules:\n  {prober}: {{prober: {prober}}}\nmonitors: [{json.dumps(monitor)}]\n"
    with pytest.raises(ConfigError) as loaded:
        parse_config(config, "c.yml")
    assert str(loaded.value).endswith(f"monitors[0].target: {reason}")

    body: dict[str, Any] = {"name": "m", "host": host}
    if port is not None:
        body["port"] = port
    before = api.snapshot()
    status, answer = await api.call("POST", f"/v1/{prober}-monitors", body)
    assert status == 400, answer
    assert answer["error"]["code"] == "VALIDATION_ERROR"
    assert answer["error"]["message"].removeprefix("host: Invalid hostname: ") in (
        reason,
        f"host: {reason}",
    )
    assert api.snapshot() == before

    response = await api.client.get("/probe", params={"module": prober, "target": target})
    assert response.status == 400
    assert await response.text() == f"target parameter: {reason}\n"


async def test_an_empty_target_is_missing_unless_the_prober_takes_one() -> None:
    for prober in ("tcp", "icmp"):
        with pytest.raises(TargetError, match=r"^missing$"):
            accept_target(prober, "")
    with pytest.raises(ConfigError, match=r"monitors\[0\]\.target: missing$"):
        parse_config(
            "modules:\n  tcp: {prober: tcp}\nmonitors: [{name: m, module: tcp, target: '', interval: 1m}]\n",
            "c.yml",
        )


async def test_the_longest_host_the_api_takes_makes_a_target_every_path_takes(api: Api) -> None:
    """A 253-character name and port 65535: the API creates it, its plan runs, and the target
    /v1/sd hands to Prometheus is one /probe takes."""
    host = ".".join(["a" * 63] * 3 + ["b" * 61])
    assert len(host) == 253
    monitor = await api.create("tcp", {"name": "long", "host": host, "port": 65535})
    assert api.exporter.monitors.plan_errors == {}
    assert monitor["id"] in api.exporter.monitors.plans
    assert accept_target("tcp", f"{host}:65535") == HostPort(host, 65535)
    with pytest.raises(TargetError, match="longer than 259 characters"):
        accept_target("tcp", f"{host}x:65535")
