"""/probe?monitor=ID: what /v1/sd hands to Prometheus probes exactly as the monitor checks."""

from __future__ import annotations

from helpers import assert_failed, assert_succeeded, debug_text, probe
from tcpservers import answer_ok

from sonde_exporter.monitors.discovery import Discovery, ExporterAddress

CONFIG = """
modules:
  tcp:
    prober: tcp
    timeout: 4s
  tcp_greeting:
    prober: tcp
    timeout: 3s
    tcp:
      query_response:
        - expect: "^OK"
monitors:
  - name: greeting
    module: tcp_greeting
    target: 127.0.0.1:{port}
    interval: 1h
    timeout: 2s
"""


async def test_a_monitor_is_probed_with_its_own_module_target_and_timeout(
    exporter_client, tcp_server
) -> None:  # type: ignore[no-untyped-def]
    port = await tcp_server(answer_ok)
    client = await exporter_client(CONFIG.format(port=port))
    (monitor_id,) = client.exporter.monitors.plans
    status, body = await probe(client, monitor=monitor_id)
    assert status == 200
    metrics = assert_succeeded(body)
    assert metrics["probe_timeout_seconds"] == 2.0  # the monitor's timeout, not the module's
    assert metrics["probe_failed_due_to_regex"] == 0  # the module's expect step ran
    # what /v1/sd hands out is what /probe takes
    plan = client.exporter.monitors.plans[monitor_id]
    labels = Discovery(ExporterAddress(), 0.5).group(plan, "exporter:10115")["labels"]
    assert (labels["__param_monitor"], labels["__param_module"]) == (monitor_id, "tcp_greeting")


async def test_module_and_target_must_agree_with_the_monitor(exporter_client, tcp_server) -> None:  # type: ignore[no-untyped-def]
    port = await tcp_server(answer_ok)
    client = await exporter_client(CONFIG.format(port=port))
    (monitor_id,) = client.exporter.monitors.plans
    status, body = await probe(
        client, monitor=monitor_id, module="tcp_greeting", target=f"127.0.0.1:{port}"
    )
    assert status == 200
    assert_succeeded(body)
    status, body = await probe(client, monitor=monitor_id, module="tcp")
    assert status == 400
    assert body == (
        f"module parameter: monitor {monitor_id} probes module 'tcp_greeting', not 'tcp'\n"
    )
    status, body = await probe(client, monitor=monitor_id, target="127.0.0.1:1")
    assert status == 400
    assert body.startswith(f"target parameter: monitor {monitor_id} probes target ")


async def test_an_unknown_monitor_is_a_400(exporter_client, tcp_server) -> None:  # type: ignore[no-untyped-def]
    port = await tcp_server(answer_ok)
    client = await exporter_client(CONFIG.format(port=port))
    status, body = await probe(client, monitor="tcpm_0000000000000000")
    assert (status, body) == (400, "monitor parameter: no monitor 'tcpm_0000000000000000'\n")


async def test_the_monitor_failing_fails_the_probe(exporter_client, closed_port) -> None:  # type: ignore[no-untyped-def]
    client = await exporter_client(CONFIG.format(port=closed_port))
    (monitor_id,) = client.exporter.monitors.plans
    status, body = await probe(client, monitor=monitor_id)
    assert status == 200
    assert_failed(body, "connect_refused")


PLAIN = """
modules:
  tcp:
    prober: tcp
    timeout: 4s
monitors:
  - {{name: plain, module: tcp, target: "127.0.0.1:{port}", interval: 1h}}
"""


async def test_a_monitor_without_policies_is_probed_through_the_policies_as_it_checks(
    exporter_client, tcp_server
) -> None:  # type: ignore[no-untyped-def]
    """The scheduler always runs a monitor through the policy engine (its result keeps what
    the prober observed); /probe?monitor= takes the same path, so its debug log shows the
    attempt and its response time. It used to run a plain module's prober directly, as
    /probe?module= does, which stays so (a plain probe pays nothing for the policies)."""
    port = await tcp_server(answer_ok)
    client = await exporter_client(PLAIN.format(port=port))
    (monitor_id,) = client.exporter.monitors.plans
    as_monitor = await debug_text(client, monitor=monitor_id)
    assert "Attempt succeeded" in as_monitor and "response_time_seconds=" in as_monitor
    as_module = await debug_text(client, module="tcp", target=f"127.0.0.1:{port}")
    assert "Attempt" not in as_module
