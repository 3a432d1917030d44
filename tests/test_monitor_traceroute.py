"""A scheduled check that fails with traceroute_on_error keeps the path in its stored result,
and /status/{id} shows its hops (the public view leaves them out)."""

from __future__ import annotations

import asyncio

import pytest

from sonde_exporter.monitors.identity import config_monitor_id
from sonde_exporter.monitors.options import MonitorOptions

pytestmark = pytest.mark.root  # raw ICMP for the sweep

CONFIG = """
modules:
  traced:
    prober: tcp
    timeout: 3s
    traceroute_on_error: true
    traceroute: {{max_hops: 4, interval: 1h, budget: 1s}}
monitors:
  - {{name: refused, module: traced, target: "127.0.0.1:{port}", interval: 1s}}
"""


async def test_a_failed_check_stores_its_traceroute(exporter_client, closed_port, tmp_path):  # type: ignore[no-untyped-def]
    options = MonitorOptions(storage_path=str(tmp_path / "sonde.db"))
    client = await exporter_client(CONFIG.format(port=closed_port), monitors=options)
    monitor_id = config_monitor_id("tcp", "refused")
    engine = client.exporter.monitors
    for _ in range(200):  # the first tick comes within the 1s interval; the sweep is quick
        state = engine.states.get(monitor_id)
        if state is not None and state.last is not None:
            break
        await asyncio.sleep(0.05)
    assert state is not None and state.last is not None
    assert state.last.reason == "connect_refused"
    trace = state.last.details["traceroute"]
    assert trace["target"] == "127.0.0.1" and trace["reached"] is True
    (hop,) = trace["hops"]
    assert (hop["ttl"], hop["address"]) == (1, "127.0.0.1") and 0 < hop["rtt"] < 1
    # stored as such (a result waits up to 100 ms to share a commit), and shown on its page
    for _ in range(100):
        found = await engine.results(monitor_id, 1, 0)
        if found is not None and found[1] >= 1:
            break
        await asyncio.sleep(0.05)
    assert found is not None and found[1] >= 1
    assert found[0][0].details["traceroute"]["hops"][0]["address"] == "127.0.0.1"
    html = await (await client.get(f"/status/{monitor_id}")).text()
    assert "Latest traceroute" in html and "127.0.0.1" in html.split("Latest traceroute")[1]
