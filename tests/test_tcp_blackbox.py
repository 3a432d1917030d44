"""Side by side with Debian's prometheus-blackbox-exporter: same targets, same label text.

Runs the real Go binary against the same loopback TLS server and compares the metrics a
dashboard or alert would read: certificate expiries, probe_ssl_last_chain_info's labels
(Go's distinguished-name text, DNS SANs), the TLS version and probe_ip_addr_hash.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import shutil
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import trustme
from conftest import probe
from prometheus_client.parser import text_string_to_metric_families
from tcpservers import hold_open, loopback_v6_available, odd_leaf
from test_promtool import promtool_check

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


def listening_port(pid: int) -> int | None:
    """The TCP port process `pid` listens on, from its socket inodes and /proc/net/tcp."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    with open("/proc/net/tcp") as lines:
        next(lines)
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                return int(fields[1].rsplit(":", 1)[1], 16)
    return None


@pytest.fixture
async def blackbox(tmp_path) -> AsyncIterator[Callable[[str], Awaitable[str]]]:
    """Start blackbox_exporter with a config on an ephemeral port; returns its base URL."""
    assert shutil.which(BLACKBOX), f"{BLACKBOX} missing: install prometheus-blackbox-exporter"
    processes: list[asyncio.subprocess.Process] = []

    async def start(config: str) -> str:
        (tmp_path / "blackbox.yml").write_text(config)
        process = await asyncio.create_subprocess_exec(
            BLACKBOX,
            f"--config.file={tmp_path / 'blackbox.yml'}",
            "--web.listen-address=127.0.0.1:0",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        processes.append(process)
        for _ in range(200):  # it listens within milliseconds; allow a slow machine 10 s
            assert process.returncode is None, "blackbox_exporter exited"
            port = listening_port(process.pid)
            if port:
                return f"http://127.0.0.1:{port}"
            await asyncio.sleep(0.05)
        raise AssertionError("blackbox_exporter did not start listening")

    yield start
    for process in processes:
        process.terminate()
        await process.wait()


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
    blackbox_url = await blackbox(config)
    for module, target in [
        ("tls", f"127.0.0.1:{v4}"),
        ("tls", f"[::1]:{v6}"),
        ("tls", f"127.0.0.1:{gone}"),
        ("insecure", f"127.0.0.1:{v4}"),
        ("insecure", f"[::1]:{v6}"),
    ]:
        _, ours_text = await probe(client, module=module, target=target)
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
