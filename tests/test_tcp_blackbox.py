"""Side by side with Debian's prometheus-blackbox-exporter: same targets, same label text.

Runs the real Go binary against the same loopback TLS server and compares the metrics a
dashboard or alert would read: certificate expiries, probe_ssl_last_chain_info's labels
(Go's distinguished-name text, DNS SANs), the TLS version and probe_ip_addr_hash.
"""

from __future__ import annotations

import datetime
import shutil
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
import trustme
from helpers import parse_metrics, probe, promtool_check
from processes import Process
from prometheus_client.parser import text_string_to_metric_families
from tcpservers import hold_open, loopback_v6_available, odd_leaf

pytestmark = pytest.mark.prometheus

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
COMPARED = (
    "probe_success",
    "probe_ip_protocol",
    "probe_ip_addr_hash",
    "probe_ssl_earliest_cert_expiry",
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "probe_ssl_last_chain_info",
    "probe_tls_version_info",
)
Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def series(text: str, *, drop_labels: tuple[str, ...] = ()) -> Series:
    out: Series = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in COMPARED:
                labels = frozenset((k, v) for k, v in sample.labels.items() if k not in drop_labels)
                out[(sample.name, labels)] = sample.value
    return out


@pytest.fixture
def blackbox(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start blackbox_exporter with a config on an ephemeral port; returns its base URL."""
    assert shutil.which(BLACKBOX), f"{BLACKBOX} missing: install prometheus-blackbox-exporter"
    processes: list[Process] = []

    def start(config: str) -> str:
        (tmp_path / "blackbox.yml").write_text(config)
        argv = [
            BLACKBOX,
            f"--config.file={tmp_path / 'blackbox.yml'}",
            "--web.listen-address=127.0.0.1:0",
        ]
        processes.append(Process("blackbox", argv, tmp_path))
        return f"http://127.0.0.1:{processes[-1].wait_listening()}"

    yield start
    for process in processes:
        process.stop()


async def test_tls_metrics_match_blackbox(exporter_client, tcp_server, blackbox, tmp_path):
    loopback_v6_available()
    ca = trustme.CA()
    ca.cert_pem.write_to_path(tmp_path / "ca.pem")
    expired = ca.issue_cert(
        "svc.sonde.test",
        not_before=datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),
        not_after=datetime.datetime(2021, 1, 1, tzinfo=datetime.UTC),
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*odd_leaf(ca, tmp_path))
    expired_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    expired.configure_cert(expired_context)
    v4 = await tcp_server(hold_open, ssl=context)
    v6 = await tcp_server(hold_open, host="::1", ssl=context)
    gone = await tcp_server(hold_open, ssl=expired_context)
    config = f"""
modules:
  tls:
    prober: tcp
    timeout: 3s
    tcp:
      tls: true
      tls_config:
        ca_file: {tmp_path / "ca.pem"}
        server_name: svc.sonde.test
  insecure:
    prober: tcp
    timeout: 3s
    tcp:
      tls: true
      tls_config:
        insecure_skip_verify: true
"""
    client = await exporter_client(config)
    blackbox_url = blackbox(config)
    for module, target, success in [
        ("tls", f"127.0.0.1:{v4}", 1),
        ("tls", f"[::1]:{v6}", 1),
        ("tls", f"127.0.0.1:{gone}", 0),  # expired: verification fails
        ("insecure", f"127.0.0.1:{v4}", 1),
        ("insecure", f"[::1]:{v6}", 1),
    ]:
        _, ours_text = await probe(client, module=module, target=target)
        # Both agreeing is worth something only if the probe went as planned: a handshake
        # that failed on both sides would leave no certificate series to compare.
        assert parse_metrics(ours_text)["probe_success"] == success, ours_text
        assert ("probe_ssl_last_chain_info{" in ours_text) == bool(success), ours_text
        promtool_check(ours_text)  # the escaped distinguished names are valid exposition text
        theirs = series(await fetch(f"{blackbox_url}/probe", module=module, target=target))
        ours = series(ours_text, drop_labels=("serialnumber",))  # not in blackbox 0.23
        if module == "insecure":
            # blackbox 0.23 reports Go's zero time (-62135596800) when nothing was verified;
            # sonde-exporter leaves the series out instead.
            chain = ("probe_ssl_last_chain_expiry_timestamp_seconds", frozenset())
            assert chain not in ours
            theirs.pop(chain)
        assert ours == theirs, (module, target)
    # blackbox 0.28 prints the serial number's bytes in hex, so the leading zero stays.
    _, ours_text = await probe(client, module="tls", target=f"127.0.0.1:{v4}")
    assert 'serialnumber="0abcdef012"' in ours_text


async def fetch(url: str, **params: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        return await response.text()
