"""GET /probe: request checking (every 400 case), the timeout rule, debug output, and the
HTTP details a Prometheus scraper relies on. Real exporter, real loopback servers."""

from __future__ import annotations

import asyncio
import time

import pytest
from helpers import parse_metrics, probe

import sonde_exporter.handler as handler_module
from sonde_exporter.config import Config, Module, Secret
from sonde_exporter.handler import TIMEOUT_HEADER, BadRequest, probe_timeout
from sonde_exporter.prober_base import ProbeContext, Prober
from sonde_exporter.targets import parse_host_port

CONFIG = """
modules:
  tcp:
    prober: tcp
    timeout: 2s
  tcp_untimed:
    prober: tcp
  banner:
    prober: tcp
    timeout: 2s
    tcp:
      query_response:
        - expect: "^hello"
  web:
    prober: http
    http:
      method: GET
"""

PROBE_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


async def accept_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


# (query parameters, the one-line reason the client gets)
BAD_REQUESTS = [
    ({}, "module parameter: missing"),
    ({"module": "", "target": "127.0.0.1:80"}, "module parameter: missing"),
    ({"module": "nope", "target": "127.0.0.1:80"}, 'module parameter: unknown module "nope"'),
    ({"module": "tcp"}, "target parameter: missing"),
    ({"module": "tcp", "target": ""}, "target parameter: missing"),
    ({"module": "tcp", "target": "127.0.0.1"}, "target parameter: '127.0.0.1' is missing a port"),
    ({"module": "tcp", "target": "localhost"}, "target parameter: 'localhost' is missing a port"),
    ({"module": "tcp", "target": "127.0.0.1:"}, "port '' is not a number from 1 to 65535"),
    ({"module": "tcp", "target": "127.0.0.1:0"}, "port '0' is not a number from 1 to 65535"),
    ({"module": "tcp", "target": "127.0.0.1:65536"}, "port '65536' is not a number"),
    ({"module": "tcp", "target": "127.0.0.1:smtp"}, "port 'smtp' is not a number"),
    ({"module": "tcp", "target": "127.0.0.1:-1"}, "port '-1' is not a number"),
    ({"module": "tcp", "target": "127.0.0.1:²"}, "is not a number"),
    ({"module": "tcp", "target": "tcp://127.0.0.1:80"}, "has a URL scheme; expected host:port"),
    ({"module": "tcp", "target": "https://example.org"}, "has a URL scheme"),
    ({"module": "tcp", "target": "127.0.0.1:80/health"}, "has a path; expected host:port"),
    (
        {"module": "tcp", "target": "a" * 254 + ".org:80"},
        "target parameter: longer than 259 characters",
    ),
    (
        {"module": "tcp", "target": "127.0.0.1:80\n"},
        "target parameter: contains control characters",
    ),
    (
        {"module": "tcp", "target": "127.0.0.1\x00:80"},
        "target parameter: contains control characters",
    ),
    ({"module": "tcp", "target": "host\t:80"}, "target parameter: contains control characters"),
    (
        {"module": "tcp", "target": "evil\u202e.example:80"},
        "target parameter: contains control characters",
    ),
    ({"module": "tcp", "target": "256.1.1.1:80"}, "is not a valid IPv4 address or hostname"),
    ({"module": "tcp", "target": "a" * 64 + ".example:80"}, "label longer than 63 characters"),
    ({"module": "tcp", "target": "::1:80"}, "an IPv6 address needs brackets, as [::1]:port"),
    ({"module": "tcp", "target": "[::1]"}, "is missing a port; expected [ipv6]:port"),
    ({"module": "tcp", "target": "[::1:80"}, "has an unclosed '['"),
    ({"module": "tcp", "target": "[127.0.0.1]:80"}, "in brackets is not an IPv6 address"),
    ({"module": "tcp", "target": "bad host:80"}, "contains whitespace"),
    ({"module": "tcp", "target": "-bad-.example:80"}, "is not a valid hostname"),
    ({"module": "tcp", "target": ":80"}, "target parameter: empty host"),
    (
        {"module": "tcp", "target": "127.0.0.1:80", "hostname": "bad host"},
        "hostname parameter: host 'bad host' contains whitespace",
    ),
    (
        {"module": "tcp", "target": "127.0.0.1:80", "hostname": "x" * 300},
        "hostname parameter: longer than 259 characters",
    ),
    (
        {"module": "tcp", "target": "127.0.0.1:80", "hostname": "a/b"},
        "hostname parameter: host 'a/b' is not a valid hostname",
    ),
    (
        {"module": "web", "target": "http://127.0.0.1/"},
        'module parameter: module "web" uses the http prober, which only blackbox_exporter has',
    ),
    (
        {"module": "tcp", "target": "127.0.0.1:80", "debug": "yes"},
        "debug parameter: expected true or false, not 'yes'",
    ),
    ({"module": "tcp", "target": "127.0.0.1:80", "debug": ""}, "debug parameter: expected"),
]


@pytest.mark.parametrize(("params", "reason"), BAD_REQUESTS)
async def test_bad_request_is_400_with_a_one_line_reason(exporter_client, params, reason):
    client = await exporter_client(CONFIG)
    response = await client.get("/probe", params=params)
    body = await response.text()
    assert response.status == 400
    assert response.content_type == "text/plain"
    assert reason in body
    parameter = reason.split(" parameter: ")[0] if " parameter: " in reason else None
    if parameter is None:  # a target error: the reason is the target checker's own words
        parameter = "target"
    assert body.startswith(f"{parameter} parameter: "), body
    assert body.endswith("\n") and body.count("\n") == 1
    assert "Traceback" not in body
    assert len(client.exporter.history) == 0  # a bad request is not a probe


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("fifteen", "not a number: 'fifteen'"),
        ("15s", "not a number: '15s'"),
        ("NaN", "must be a non-negative number of seconds"),
        ("inf", "must be a non-negative number of seconds"),
        ("-1", "must be a non-negative number of seconds"),
        ("1e999", "must be a non-negative number of seconds"),
        ("0.3", "scrape timeout 0.3s minus --timeout-offset 0.5s leaves no time to probe"),
    ],
)
async def test_bad_scrape_timeout_header_is_400(exporter_client, header, reason):
    client = await exporter_client(CONFIG)
    response = await client.get(
        "/probe",
        params={"module": "tcp_untimed", "target": "127.0.0.1:80"},
        headers={TIMEOUT_HEADER: header},
    )
    body = await response.text()
    assert (response.status, body) == (400, f"{TIMEOUT_HEADER} header: {reason}\n")


async def test_unknown_module_counts(exporter_client):
    client = await exporter_client(CONFIG)
    for _ in range(3):
        status, body = await probe(client, module="ssh_banner", target="127.0.0.1:22")
        assert (status, body) == (400, 'module parameter: unknown module "ssh_banner"\n')
    metrics = parse_metrics(await (await client.get("/metrics")).text())
    assert metrics["sonde_module_unknown_total"] == 3


async def test_unknown_module_name_is_shown_safely(exporter_client):
    client = await exporter_client(CONFIG)
    status, body = await probe(client, module="x\ny\x1b[31m" + "z" * 500, target="a:1")
    assert status == 400
    assert body.startswith('module parameter: unknown module "x?y?[31mzzz')
    assert body.count("\n") == 1 and len(body) < 200


@pytest.mark.parametrize(
    ("module_timeout", "header", "offset", "expected"),
    [  # blackbox_exporter's table test, then the edges of the same rule
        (0, "15", 0.5, 14.5),
        (20, "15", 0.5, 14.5),
        (5, "15", 0.5, 5),
        (10, "", 0.5, 10),
        (0, "", 0.5, 119.5),
        (0, None, 0.5, 119.5),
        (0, "0", 0.5, 119.5),  # 0 means "not set", as in blackbox
        (0, " 15 ", 0.5, 14.5),
        (3, "0.2", 0.5, 3),  # header minus offset below zero: the module timeout wins
        (3, "0.5", 0.5, 3),
        (0, "10", 0, 10),
        (0, "1.25", 0.25, 1.0),
    ],
)
def test_probe_timeout_follows_blackbox_rule(module_timeout, header, offset, expected):
    assert probe_timeout(module_timeout, header, offset) == pytest.approx(expected)


def test_probe_timeout_without_any_time_left_is_a_bad_request():
    with pytest.raises(BadRequest, match="leaves no time to probe"):
        probe_timeout(0, "0.5", 0.5)


@pytest.mark.parametrize(
    ("module", "header", "expected"),
    [("tcp", None, 2), ("tcp", "10", 2), ("tcp", "1.7", 1.2), ("tcp_untimed", None, 119.5)],
)
async def test_probe_timeout_seconds_reflects_the_header(
    exporter_client, closed_port, module, header, expected
):
    client = await exporter_client(CONFIG)
    headers = {TIMEOUT_HEADER: header} if header else {}
    response = await client.get(
        "/probe", params={"module": module, "target": f"127.0.0.1:{closed_port}"}, headers=headers
    )
    assert response.status == 200
    assert parse_metrics(await response.text())["probe_timeout_seconds"] == pytest.approx(expected)


async def test_timeout_offset_is_applied(exporter_client, closed_port):
    client = await exporter_client(CONFIG, timeout_offset=1.5)
    response = await client.get(
        "/probe",
        params={"module": "tcp_untimed", "target": f"127.0.0.1:{closed_port}"},
        headers={TIMEOUT_HEADER: "10"},
    )
    assert parse_metrics(await response.text())["probe_timeout_seconds"] == 8.5


async def test_failed_probe_is_200_with_probe_success_0(exporter_client, closed_port):
    client = await exporter_client(CONFIG)
    response = await client.get(
        "/probe", params={"module": "tcp", "target": f"127.0.0.1:{closed_port}"}
    )
    body = await response.text()
    assert response.status == 200
    assert response.headers["Content-Type"] == PROBE_CONTENT_TYPE
    metrics = parse_metrics(body)
    assert metrics["probe_success"] == 0
    assert [k for k in metrics if k.startswith("probe_failure_reason")] == [
        'probe_failure_reason{reason="connect_refused"}'
    ]
    for name in ("probe_duration_seconds", "probe_dns_lookup_time_seconds", "probe_ip_protocol"):
        assert name in metrics
    assert "connection to" not in body  # the human-readable error is for the log and debug output


async def test_twice_encoded_target_is_decoded_once_more(exporter_client, tcp_server):
    port = await tcp_server(accept_and_close)
    client = await exporter_client(CONFIG)
    status, body = await probe(client, module="tcp", target=f"127.0.0.1%3A{port}")
    assert status == 200
    assert parse_metrics(body)["probe_success"] == 1
    assert next(iter(client.exporter.history)).target == f"127.0.0.1:{port}"


async def test_repeated_parameters_use_the_first(exporter_client, tcp_server, closed_port):
    port = await tcp_server(accept_and_close)
    client = await exporter_client(CONFIG)
    response = await client.get(
        f"/probe?module=tcp&target=127.0.0.1:{port}&target=127.0.0.1:{closed_port}&module=nope"
    )
    assert parse_metrics(await response.text())["probe_success"] == 1


async def test_hostname_parameter_is_accepted(exporter_client, tcp_server):
    port = await tcp_server(accept_and_close)
    client = await exporter_client(CONFIG)
    status, body = await probe(
        client, module="tcp", target=f"127.0.0.1:{port}", hostname="mail.example.org"
    )
    assert status == 200 and parse_metrics(body)["probe_success"] == 1


async def test_debug_output_has_logs_metrics_and_module_config(exporter_client, closed_port):
    client = await exporter_client(CONFIG)
    response = await client.get(
        "/probe", params={"module": "tcp", "target": f"127.0.0.1:{closed_port}", "debug": "true"}
    )
    body = await response.text()
    assert response.status == 200
    assert response.content_type == "text/plain"
    logs, rest = body.split("Metrics that would have been returned:\n")
    metrics, config = rest.split("Module configuration:\n")
    assert logs.startswith("Logs for the probe:\n")
    assert 'msg="Beginning probe"' in logs
    assert "reason=connect_refused" in logs
    assert f"connection to 127.0.0.1 port {closed_port} refused" in logs
    assert parse_metrics(metrics)["probe_success"] == 0
    assert "prober: tcp\ntimeout: 2s\n" in config
    assert "Traceback" not in body


@pytest.mark.parametrize(("debug", "is_report"), [("TRUE", True), ("True", True), ("FALSE", False)])
async def test_debug_takes_true_or_false_in_any_case(
    exporter_client, closed_port, debug, is_report
):
    client = await exporter_client(CONFIG)
    status, body = await probe(client, module="tcp", target=f"127.0.0.1:{closed_port}", debug=debug)
    assert status == 200
    assert body.startswith("Logs for the probe:\n") is is_report
    if not is_report:
        assert parse_metrics(body)["probe_success"] == 0


class _ModuleWithPassword(Module):
    """Stands in for a prober block with a password until the email prober lands."""

    password: Secret


async def test_debug_output_redacts_secrets(exporter_client, closed_port):
    client = await exporter_client(CONFIG)
    module = _ModuleWithPassword.model_validate(
        {"prober": "tcp", "timeout": "2s", "password": "hunter2"}
    )
    client.exporter.config = Config(modules={"auth": module})
    response = await client.get(
        "/probe", params={"module": "auth", "target": f"127.0.0.1:{closed_port}", "debug": "true"}
    )
    body = await response.text()
    assert "password: <secret>" in body
    assert "hunter2" not in body


async def test_prober_bug_is_a_failed_probe_without_traceback(
    exporter_client, closed_port, monkeypatch
):
    async def broken(target: object, module: object, ctx: ProbeContext) -> None:
        raise RuntimeError("prober bug with a secret detail")

    broken_prober = Prober(parse_target=parse_host_port, probe=broken)
    monkeypatch.setattr(handler_module, "get_prober", lambda name: broken_prober)
    client = await exporter_client(CONFIG)
    for debug in ("false", "true"):
        response = await client.get(
            "/probe", params={"module": "tcp", "target": f"127.0.0.1:{closed_port}", "debug": debug}
        )
        body = await response.text()
        assert response.status == 200
        assert 'probe_failure_reason{reason="internal_error"} 1' in body
        assert "Traceback" not in body and "secret detail" not in body


async def test_head_and_other_methods(exporter_client, tcp_server):
    port = await tcp_server(accept_and_close)
    client = await exporter_client(CONFIG)
    params = {"module": "tcp", "target": f"127.0.0.1:{port}"}
    head = await client.head("/probe", params=params)
    assert head.status == 200
    assert head.headers["Content-Type"] == PROBE_CONTENT_TYPE
    assert await head.read() == b""
    assert (await client.post("/probe", params=params)).status == 405


async def test_gzip_accepting_scraper_gets_valid_text(exporter_client, tcp_server):
    port = await tcp_server(accept_and_close)
    client = await exporter_client(CONFIG)
    response = await client.get(
        "/probe",
        params={"module": "tcp", "target": f"127.0.0.1:{port}"},
        headers={"Accept-Encoding": "gzip"},
    )
    assert response.status == 200
    assert parse_metrics(await response.text())["probe_success"] == 1


async def test_a_long_run_of_letters_ending_in_a_refused_character_is_refused_at_once(
    exporter_client,
) -> None:
    """The host rule matched as one pattern backtracked exponentially on such a name (28
    letters: 20 s; 62: longer than the age of the universe) and held the event loop meanwhile. Label by
    label it takes microseconds; the 5 s bound only separates "at once" from "hung", with
    room for a loaded 2-core box."""
    client = await exporter_client(CONFIG)
    for target in ("a" * 62 + "!:80", "a" * 60 + "!.example:80", "ab" * 31 + "-.org:80"):
        started = time.perf_counter()
        response = await client.get("/probe", params={"module": "tcp", "target": target})
        assert response.status == 400
        assert "is not a valid hostname" in await response.text()
        assert time.perf_counter() - started < 5
