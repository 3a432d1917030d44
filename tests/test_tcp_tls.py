"""TLS against real loopback servers with trustme certificates: verification and TLS metrics."""

from __future__ import annotations

import datetime
import hashlib
import ssl

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from helpers import assert_failed, assert_succeeded, parse_metrics, probe
from tcpservers import Pki, blocking_tls_server, hold_open, leaf_certificate

UTC = datetime.UTC


def tls_module(name: str, **tls_config: str) -> str:
    lines = "".join(f"          {key}: {value}\n" for key, value in tls_config.items())
    return f"  {name}:\n    prober: tcp\n    timeout: 2s\n    tcp:\n      tls: true\n" + (
        f"      tls_config:\n{lines}" if lines else ""
    )


async def start(exporter_client, *modules: str):
    return await exporter_client("modules:\n" + "".join(modules))


async def test_private_ca_via_ca_file(exporter_client, tcp_server, pki):
    port = await tcp_server(hold_open, ssl=pki.server_context())
    client = await start(exporter_client, tls_module("tls", ca_file=pki.ca_file))
    _, body = await probe(client, module="tls", target=f"localhost:{port}")
    metrics = assert_succeeded(body)
    assert metrics['probe_tls_version_info{version="TLS 1.3"}'] == 1
    assert metrics['probe_tcp_duration_seconds{phase="tls"}'] > 0
    assert "probe_tcp_rtt_seconds" in metrics


async def test_certificate_metrics_have_exact_values(exporter_client, tcp_server, pki):
    port = await tcp_server(hold_open, ssl=pki.server_context())
    client = await start(exporter_client, tls_module("tls", ca_file=pki.ca_file))
    _, body = await probe(client, module="tls", target=f"127.0.0.1:{port}")
    metrics = assert_succeeded(body)
    leaf = leaf_certificate(pki.leaf)
    not_after = datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC).timestamp()
    assert metrics["probe_ssl_earliest_cert_expiry"] == not_after
    assert metrics["probe_ssl_last_chain_expiry_timestamp_seconds"] == not_after  # CA: year 3000
    (info,) = [k for k in metrics if k.startswith("probe_ssl_last_chain_info{")]
    serial = leaf.serial_number.to_bytes((leaf.serial_number.bit_length() + 7) // 8).hex()
    ou = leaf.subject.rfc4514_string().split(",")[0]  # OU=Testing cert #...
    issuer_ou = leaf.issuer.rfc4514_string().split(",")[0]
    assert info == (
        "probe_ssl_last_chain_info{"
        f'fingerprint_sha256="{hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()}",'
        f'issuer="{issuer_ou},O=trustme v{_trustme_version()}",'
        f'serialnumber="{serial}",'
        f'subject="{ou},O=trustme v{_trustme_version()}",'
        'subjectalternative="localhost"}'  # DNS names only, as Go's cert.DNSNames
    )


def _trustme_version() -> str:
    import trustme

    return trustme.__version__


async def test_expired_certificate_is_tls_verify(exporter_client, tcp_server, pki):
    expired = pki.ca.issue_cert(
        "localhost",
        not_before=datetime.datetime(2020, 1, 1, tzinfo=UTC),
        not_after=datetime.datetime(2021, 1, 1, tzinfo=UTC),
    )
    port = await tcp_server(hold_open, ssl=pki.server_context(expired))
    client = await start(exporter_client, tls_module("tls", ca_file=pki.ca_file))
    _, body = await probe(client, module="tls", target=f"localhost:{port}")
    metrics = assert_failed(body, "tls_verify")
    assert "probe_ssl_earliest_cert_expiry" not in metrics
    _, debug = await probe(client, module="tls", target=f"localhost:{port}", debug="true")
    assert "certificate has expired" in debug


async def test_wrong_hostname_is_tls_verify(exporter_client, tcp_server, pki):
    other = pki.ca.issue_cert("other.example.org")
    port = await tcp_server(hold_open, ssl=pki.server_context(other))
    client = await start(exporter_client, tls_module("tls", ca_file=pki.ca_file))
    _, body = await probe(client, module="tls", target=f"localhost:{port}")
    assert_failed(body, "tls_verify")
    _, body = await probe(client, module="tls", target=f"127.0.0.1:{port}")
    assert_failed(body, "tls_verify")


async def test_unknown_ca_is_tls_verify(exporter_client, tcp_server, pki):
    port = await tcp_server(hold_open, ssl=pki.server_context())
    client = await start(exporter_client, tls_module("tls"))  # system CAs only
    _, body = await probe(client, module="tls", target=f"localhost:{port}")
    assert_failed(body, "tls_verify")


async def test_ca_file_replaces_the_system_cas(exporter_client, tcp_server, pki, monkeypatch):
    """As Go's prometheus/common: with a ca_file, the system's CAs are not trusted."""
    public = Pki.create(pki.dir / "other")  # stands in for a CA of the system's trust store
    monkeypatch.setenv("SSL_CERT_FILE", public.ca_file)  # read when the config loads
    port = await tcp_server(hold_open, ssl=public.server_context())
    client = await start(
        exporter_client,
        tls_module("system_cas"),
        tls_module("private_ca", ca_file=pki.ca_file),
    )
    _, body = await probe(client, module="system_cas", target=f"localhost:{port}")
    assert_succeeded(body)
    _, body = await probe(client, module="private_ca", target=f"localhost:{port}")
    assert_failed(body, "tls_verify")


async def test_hostname_parameter_fills_an_empty_server_name(exporter_client, tcp_server, pki):
    sni: list[str | None] = []
    context = pki.server_context(pki.ca.issue_cert("svc.example.org"))
    context.sni_callback = lambda _sock, name, _ctx: sni.append(name)  # type: ignore[assignment,misc]
    port = await tcp_server(hold_open, ssl=context)
    client = await start(
        exporter_client,
        tls_module("by_target", ca_file=pki.ca_file),
        tls_module("named", ca_file=pki.ca_file, server_name="svc.example.org"),
    )
    target = f"127.0.0.1:{port}"
    _, body = await probe(client, module="by_target", target=target)
    assert_failed(body, "tls_verify")
    _, body = await probe(client, module="by_target", target=target, hostname="svc.example.org")
    assert_succeeded(body)
    _, body = await probe(client, module="named", target=target, hostname="wrong.example.org")
    assert_succeeded(body)  # a configured server_name wins over ?hostname=
    assert sni == [None, "svc.example.org", "svc.example.org"]  # no SNI for an IP literal


async def test_insecure_skip_verify_accepts_any_certificate(exporter_client, tcp_server, pki):
    expired = pki.ca.issue_cert(
        "other.example.org",
        not_before=datetime.datetime(2020, 1, 1, tzinfo=UTC),
        not_after=datetime.datetime(2021, 1, 1, tzinfo=UTC),
    )
    port = await tcp_server(hold_open, ssl=pki.server_context(expired))
    client = await start(exporter_client, tls_module("insecure", insecure_skip_verify="true"))
    _, body = await probe(client, module="insecure", target=f"localhost:{port}")
    metrics = assert_succeeded(body)
    expiry = datetime.datetime(2021, 1, 1, tzinfo=UTC).timestamp()
    assert metrics["probe_ssl_earliest_cert_expiry"] == expiry
    assert "probe_ssl_last_chain_expiry_timestamp_seconds" not in metrics  # nothing verified
    assert any(k.startswith("probe_ssl_last_chain_info{") for k in metrics)


@pytest.mark.parametrize(
    ("max_version", "steps"),
    [
        # TLS 1.2: the server refuses inside the handshake; a plain connect sees it.
        (ssl.TLSVersion.TLSv1_2, ""),
        # TLS 1.3: the client's handshake ends before the server has checked its certificate;
        # the refusal (an alert) is the next record, seen by the dialogue's first read.
        (None, '      query_response:\n        - expect: "^220 "\n'),
    ],
    ids=["tls12_connect", "tls13_banner"],
)
async def test_client_certificate_required_by_the_server(exporter_client, pki, max_version, steps):
    context = pki.server_context(max_version=max_version)
    context.verify_mode = ssl.CERT_REQUIRED
    pki.ca.configure_trust(context)
    cert_file, key_file = pki.client_cert_files("prober")
    stranger = Pki.create(pki.dir / "other")  # another CA: the server does not trust its certs
    stranger_cert, stranger_key = stranger.client_cert_files("stranger")
    client = await start(
        exporter_client,
        tls_module("anonymous", ca_file=pki.ca_file) + steps,
        tls_module("with_cert", ca_file=pki.ca_file, cert_file=cert_file, key_file=key_file)
        + steps,
        tls_module(
            "untrusted_cert", ca_file=pki.ca_file, cert_file=stranger_cert, key_file=stranger_key
        )
        + steps,
    )
    with blocking_tls_server(context, banner=b"220 welcome\r\n") as port:
        _, body = await probe(client, module="anonymous", target=f"localhost:{port}")
        assert_failed(body, "tls_handshake")
        _, debug = await probe(client, module="anonymous", target=f"localhost:{port}", debug="true")
        assert " alert " in debug  # OpenSSL's words, such as "tlsv13 alert certificate required"
        _, body = await probe(client, module="untrusted_cert", target=f"localhost:{port}")
        assert_failed(body, "tls_handshake")
        _, body = await probe(client, module="with_cert", target=f"localhost:{port}")
    metrics = assert_succeeded(body)
    version = "TLS 1.2" if max_version else "TLS 1.3"
    assert metrics[f'probe_tls_version_info{{version="{version}"}}'] == 1


async def test_min_and_max_version(exporter_client, tcp_server, pki):
    tls12_only = await tcp_server(
        hold_open, ssl=pki.server_context(max_version=ssl.TLSVersion.TLSv1_2)
    )
    default = await tcp_server(hold_open, ssl=pki.server_context())
    client = await start(
        exporter_client,
        tls_module("at_least_13", ca_file=pki.ca_file, min_version="TLS13"),
        tls_module("at_most_12", ca_file=pki.ca_file, max_version="TLS12"),
    )
    _, body = await probe(client, module="at_least_13", target=f"localhost:{tls12_only}")
    assert_failed(body, "tls_handshake")
    _, body = await probe(client, module="at_least_13", target=f"localhost:{default}")
    assert parse_metrics(body)['probe_tls_version_info{version="TLS 1.3"}'] == 1
    _, body = await probe(client, module="at_most_12", target=f"localhost:{default}")
    metrics = assert_succeeded(body)
    assert metrics['probe_tls_version_info{version="TLS 1.2"}'] == 1
    assert 'version="TLS 1.3"' not in body
