"""--web.config.file, TLS side, on the real process: server and client certificates, SANs,
versions, certificate rotation by replacing files, and a broken file on change."""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
from collections.abc import Callable, Iterator

import pytest
import trustme
from helpers import parse_metrics, probe
from processes import wait_for
from tcpservers import Pki
from webservers import (
    EXPORTER,
    TCP_CONFIG,
    SecuredExporter,
    basic,
    bcrypt_hash,
    client_context,
    https_get,
    refused,
    server_files,
)

TLS = """\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
"""
CLIENT_CERTS = """\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: ca.pem
  client_auth_type: {auth_type}
"""
RELOADED = "sonde_web_config_last_reload_successful"
RELOAD_TIME = "sonde_web_config_last_reload_success_timestamp_seconds"

Start = Callable[..., SecuredExporter]


@pytest.fixture
def secured(pki: Pki) -> Iterator[Start]:
    """Start sonde-exporter in pki.dir (server.crt, server.key and ca.pem are there)."""
    server_files(pki)
    started: list[SecuredExporter] = []

    def start(web_config: str, *flags: str) -> SecuredExporter:
        started.append(SecuredExporter(pki.dir, web_config, *flags))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def der(leaf: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


def foreign_client_cert(pki: Pki) -> tuple[str, str]:
    """A client certificate from a CA the exporter does not trust."""
    cert = trustme.CA().issue_cert("mallory@example.org")
    cert_file, key_file = pki.dir / "mallory.crt", pki.dir / "mallory.key"
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    return str(cert_file), str(key_file)


def test_serves_https_with_the_configured_certificate(secured: Start, pki: Pki) -> None:
    exporter = secured(TLS)
    answer = https_get(exporter.port, "/-/healthy", client_context(pki))
    assert (answer.status, answer.body) == (200, "Healthy\n")
    assert answer.peer_cert == der(pki.leaf)
    assert answer.version == "TLSv1.3"  # exporter-toolkit's default max_version
    plain = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=10)
    with pytest.raises((ConnectionError, http.client.BadStatusLine)):
        plain.request("GET", "/-/healthy")
        plain.getresponse()  # the server's TLS handshake fails on plain HTTP and hangs up
    plain.close()


TLS12 = ssl.TLSVersion.TLSv1_2


def test_required_client_certificate_is_verified(secured: Start, pki: Pki) -> None:
    exporter = secured(CLIENT_CERTS.format(auth_type="RequireAndVerifyClientCert"))
    alice = pki.client_cert_files("alice")
    mallory = foreign_client_cert(pki)
    assert https_get(exporter.port, "/metrics", client_context(pki, alice)).status == 200
    # asyncio hangs up on a failed handshake without sending the alert, so the client sees
    # an EOF, under TLS 1.2 during the handshake, under TLS 1.3 on its first read (its side
    # of the handshake completes before the server checks the certificate).
    for version in (TLS12, None):
        refused(exporter.port, client_context(pki, version=version))
        refused(exporter.port, client_context(pki, mallory, version=version))


def test_optional_client_certificate_is_verified_when_given(secured: Start, pki: Pki) -> None:
    exporter = secured(CLIENT_CERTS.format(auth_type="VerifyClientCertIfGiven"))
    assert https_get(exporter.port, "/metrics", client_context(pki)).status == 200
    alice = pki.client_cert_files("alice")
    assert https_get(exporter.port, "/metrics", client_context(pki, alice)).status == 200
    mallory = foreign_client_cert(pki)
    for version in (TLS12, None):
        refused(exporter.port, client_context(pki, mallory, version=version))


def test_client_allowed_sans(secured: Start, pki: Pki) -> None:
    exporter = secured(
        CLIENT_CERTS.format(auth_type="RequireAndVerifyClientCert")
        + "  client_allowed_sans: [carol@example.org, alice@example.org]\n"
    )
    alice = client_context(pki, pki.client_cert_files("alice"))
    bob = client_context(pki, pki.client_cert_files("bob"))
    assert https_get(exporter.port, "/metrics", alice).status == 200
    for path in ("/metrics", "/-/healthy"):  # the SAN check spares no route
        answer = https_get(exporter.port, path, bob)
        assert answer.status == 403
        assert (
            answer.body == "Forbidden: the client certificate has none of the client_allowed_sans\n"
        )
        assert answer.headers["Connection"] == "close"


@pytest.mark.parametrize(
    ("versions", "works", "fails"),
    [
        ("max_version: TLS12", ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3),
        ("min_version: TLS13", ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2),
    ],
)
def test_min_and_max_version(
    secured: Start, pki: Pki, versions: str, works: ssl.TLSVersion, fails: ssl.TLSVersion
) -> None:
    exporter = secured(f"{TLS}  {versions}\n")
    answer = https_get(exporter.port, "/-/healthy", client_context(pki, version=works))
    assert (answer.status, answer.version) == (200, works.name.replace("_", "."))
    refused(exporter.port, client_context(pki, version=fails))


def test_certificate_rotates_when_the_files_are_replaced(secured: Start, pki: Pki) -> None:
    exporter = secured(TLS)
    context = client_context(pki)
    assert https_get(exporter.port, "/-/healthy", context).peer_cert == der(pki.leaf)
    loaded_at = exporter.metric(context, RELOAD_TIME)
    renewed = pki.ca.issue_cert("localhost", "127.0.0.1")
    server_files(pki, renewed, "renewed")  # then renamed over the old ones, as certbot does
    os.replace(pki.dir / "renewed.key", pki.dir / "server.key")
    os.replace(pki.dir / "renewed.crt", pki.dir / "server.crt")
    wait_for(
        "the renewed certificate on new connections",
        lambda: https_get(exporter.port, "/-/healthy", context).peer_cert == der(renewed),
    )
    loaded = [line for line in exporter.log().splitlines() if "Loaded web config file" in line]
    assert len(loaded) == 2, loaded  # at start, and once for the renewal
    assert exporter.metric(context, RELOADED) == 1
    assert exporter.metric(context, RELOAD_TIME) > loaded_at


def test_broken_web_config_on_change_keeps_the_old_one(secured: Start, pki: Pki) -> None:
    exporter = secured(f"{TLS}basic_auth_users:\n  alice: {bcrypt_hash('alice-pw')}\n")
    context = client_context(pki)
    alice = basic("alice", "alice-pw")
    assert exporter.metric(context, RELOADED, alice) == 1
    exporter.web_file.write_text(f"{TLS}basic_auth_users:\n  alice: not-a-hash\n")
    line = exporter.wait_for_log("Error reloading web config")
    assert f"{exporter.web_file}:5: basic_auth_users.alice: not a bcrypt hash" in line
    assert "not-a-hash" not in line  # a hash, even a broken one, is a secret
    wait_for("the failure on /metrics", lambda: exporter.metric(context, RELOADED, alice) == 0)
    assert https_get(exporter.port, "/metrics", context).status == 401  # still guarded
    exporter.web_file.write_text("basic_auth_users: {}\n")  # TLS off: needs a restart
    exporter.wait_for_log("turning TLS on or off needs a restart")
    assert https_get(exporter.port, "/metrics", context, alice).status == 200
    exporter.web_file.write_text(f"{TLS}basic_auth_users:\n  bob: {bcrypt_hash('bob-pw')}\n")
    wait_for(
        "the fixed file in force",
        lambda: https_get(exporter.port, "/metrics", context, basic("bob", "bob-pw")).status == 200,
    )
    assert exporter.metric(context, RELOADED, basic("bob", "bob-pw")) == 1
    assert https_get(exporter.port, "/metrics", context, alice).status == 401


def test_a_broken_web_config_at_start_exits_1_naming_file_line_and_field(pki: Pki) -> None:
    web, config = pki.dir / "web.yml", pki.dir / "config.yml"
    web.write_text("tls_server_config:\n  cert_file: server.crt\n  key_file: missing.key\n")
    config.write_text(TCP_CONFIG)
    server_files(pki)
    expected = f"{web}:3: tls_server_config.key_file: cannot read: No such file or directory"
    for check in ([], ["--config.check"]):
        result = subprocess.run(
            [
                *EXPORTER,
                "--config.file",
                str(config),
                "--web.config.file",
                str(web),
                *check,
                "--web.listen-address",
                "127.0.0.1:0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        assert expected in result.stderr, result.stderr


async def test_the_documented_probe_of_a_client_certificate_reads_an_answer(
    secured: Start, pki: Pki, exporter_client
) -> None:  # type: ignore[no-untyped-def]
    """README, Security: a connect-only TLS 1.3 probe cannot see its certificate refused; the
    query_response form shown there can."""
    exporter = secured(CLIENT_CERTS.format(auth_type="RequireAndVerifyClientCert"))
    alice, mallory = pki.client_cert_files("alice"), foreign_client_cert(pki)

    def module(name: str, cert: tuple[str, str], reads: bool) -> str:
        text = (
            f"  {name}:\n    prober: tcp\n    timeout: 5s\n    tcp:\n      tls: true\n"
            f"      tls_config: {{ca_file: {pki.ca_file}, cert_file: {cert[0]}, key_file: {cert[1]}}}\n"
        )
        if reads:
            text += (
                "      query_response:\n"
                '        - send: "GET /-/healthy HTTP/1.0\\r\\n\\r\\n"\n'
                '        - expect: "^HTTP/1\\\\.[01] 200"\n'
            )
        return text

    config = "modules:\n" + "".join(
        module(f"{who}_{how}", cert, how == "reads")
        for who, cert in (("alice", alice), ("mallory", mallory))
        for how in ("connects", "reads")
    )
    client = await exporter_client(config)
    target = f"localhost:{exporter.port}"
    results = {}
    for name in ("alice_connects", "alice_reads", "mallory_connects", "mallory_reads"):
        status, body = await probe(client, module=name, target=target)
        assert status == 200
        results[name] = parse_metrics(body)["probe_success"]
    assert results == {
        "alice_connects": 1,
        "alice_reads": 1,
        "mallory_connects": 1,  # the gap: the refusal comes after the client's handshake
        "mallory_reads": 0,
    }


def test_one_curve_preference_is_enforced(secured: Start, pki: Pki) -> None:
    exporter = secured(f"{TLS}  curve_preferences: [CurveP384]\n")

    def s_client(version: str, groups: str) -> subprocess.CompletedProcess[str]:
        argv = ["openssl", "s_client", "-connect", f"127.0.0.1:{exporter.port}"]
        argv += ["-CAfile", pki.ca_file, version, "-groups", groups]
        return subprocess.run(argv, input="", capture_output=True, text=True, timeout=30)

    for version in ("-tls1_3", "-tls1_2"):
        agreed = s_client(version, "P-256:P-384")  # the client prefers P-256; the server picks
        assert agreed.returncode == 0, agreed.stderr
        assert "Server Temp Key: ECDH, secp384r1" in agreed.stdout
        refused_ = s_client(version, "P-256:X25519")
        assert refused_.returncode == 1
        assert "Server Temp Key" not in refused_.stdout
