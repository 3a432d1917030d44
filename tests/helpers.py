"""What the test files share besides fixtures (those live in conftest.py): reading a /probe
answer, asserting its outcome, and checking exposition text with promtool.

Test files import from here (and from the server and process helpers), never from each other.
"""

from __future__ import annotations

import subprocess

from aiohttp import web
from aiohttp.test_utils import TestClient
from grafana_files import tool
from prometheus_client.parser import text_string_to_metric_families

COMMON = (
    "probe_success",
    "probe_duration_seconds",
    "probe_timeout_seconds",
    "probe_dns_lookup_time_seconds",
    "probe_ip_protocol",
    "probe_ip_addr_hash",
)
"""Series every TCP probe answer carries, whatever its outcome."""


def parse_metrics(text: str) -> dict[str, float]:
    """`{'probe_success': 1.0, 'probe_tcp_duration_seconds{phase="connect"}': ...}`"""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


async def probe(client: TestClient[web.Request, web.Application], **params: str) -> tuple[int, str]:
    """GET /probe with these parameters: (status, body)."""
    response = await client.get("/probe", params=params)
    return response.status, await response.text()


def failure_reasons(body: str) -> list[str]:
    """The reason labels of every probe_failure_reason series set to 1 in a /probe answer."""
    return [
        key.split('reason="')[1].rstrip('"}')
        for key, value in parse_metrics(body).items()
        if key.startswith("probe_failure_reason{") and value == 1
    ]


def assert_failed(body: str, reason: str) -> dict[str, float]:
    """The probe failed for `reason` alone and still reported the common series."""
    metrics = parse_metrics(body)
    assert metrics["probe_success"] == 0, body
    assert failure_reasons(body) == [reason], body
    assert sum(k.startswith("probe_failure_reason") for k in metrics) == 1
    assert all(name in metrics for name in COMMON)
    return metrics


def assert_succeeded(body: str) -> dict[str, float]:
    """The probe succeeded, without a failure reason, and reported the common series."""
    metrics = parse_metrics(body)
    assert metrics["probe_success"] == 1, body
    assert "probe_failure_reason" not in body
    assert all(name in metrics for name in COMMON)
    return metrics


def promtool_check(text: str) -> None:
    """`promtool check metrics` accepts the exposition text without a word of complaint."""
    result = subprocess.run(
        [tool("promtool"), "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, ""), text


async def checked_probe(client, **params: str) -> tuple[dict[str, float], str]:  # type: ignore[no-untyped-def]
    """Probe; return the parsed metrics and the body, which must pass promtool."""
    status, body = await probe(client, **params)
    assert status == 200, body
    promtool_check(body)
    return parse_metrics(body), body


async def debug_text(client, **params: str) -> str:  # type: ignore[no-untyped-def]
    status, body = await probe(client, debug="true", **params)
    assert status == 200
    return body


def failure_reason_series(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k.startswith("probe_failure_reason")}


def attempt_failures(metrics: dict[str, float]) -> list[str]:
    return sorted(k for k in metrics if k.startswith("probe_attempt_failure_reason"))
