"""The web config file's validation: exporter-toolkit's keys, what Python's ssl cannot
enforce refused by name, and every error naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from tcpservers import Pki
from webservers import bcrypt_hash, server_files

from sonde_exporter.config import ConfigError
from sonde_exporter.websecurity import load_web_config
from sonde_exporter.websecurity.model import WebConfig

TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
HASH = bcrypt_hash("pw")


@pytest.fixture
def load(pki: Pki):  # type: ignore[no-untyped-def]
    """Load a web config text from pki.dir, where server.crt, server.key and ca.pem are."""
    server_files(pki)

    def load(text: str) -> WebConfig:
        path = pki.dir / "web.yml"
        path.write_text(text)
        config = load_web_config(path)
        assert config is not None
        return config

    return load


def error(load, text: str) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        load(text)
    return str(info.value)


def test_no_flag_no_config() -> None:
    assert load_web_config(None) is None


def test_a_full_exporter_toolkit_file_loads(load, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    config = load(
        f"""\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: ca.pem
  client_auth_type: RequireAndVerifyClientCert
  client_allowed_sans: [alice@example.org]
  min_version: TLS12
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_128_GCM_SHA256]
  prefer_server_cipher_suites: false
  curve_preferences: [CurveP384]
http_server_config:
  http2: true
  headers:
    Strict-Transport-Security: max-age=31536000
    X-Content-Type-Options: nosniff
basic_auth_users:
  alice: {HASH}
rate_limit:
  interval: 1s
  burst: 20
"""
    )
    tls = config.tls_server_config
    assert tls.cert_file == str(pki.dir / "server.crt")  # relative to the file's directory
    assert tls.context is not None
    names = {c["name"] for c in tls.context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names == {"ECDHE-RSA-AES128-GCM-SHA256"}
    assert config.files()[1:] == [pki.dir / n for n in ("server.crt", "server.key", "ca.pem")]


def test_relative_paths_do_not_depend_on_the_working_directory(load, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir("/")
    assert load(TLS).tls_server_config.context is not None


def test_empty_and_null_sections_are_defaults(load) -> None:  # type: ignore[no-untyped-def]
    config = load("tls_server_config:\nbasic_auth_users:\nrate_limit:\n")
    assert config.tls_server_config.context is None
    assert config.basic_auth_users == {}
    assert load("").rate_limit.interval == 0


def test_inline_certificate_and_key(load, pki: Pki) -> None:  # type: ignore[no-untyped-def]
    cert = pki.leaf.cert_chain_pems[0].bytes().decode().replace("\n", "\n    ")
    key = pki.leaf.private_key_pem.bytes().decode().replace("\n", "\n    ")
    config = load(f"tls_server_config:\n  cert: |\n    {cert}\n  key: |\n    {key}\n")
    assert config.tls_server_config.context is not None
    assert "PRIVATE KEY" not in config.model_dump_json()  # the key is a secret


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "tls_server_config:\n  cert_file: server.crt\n  kye_file: x\n",
            "3: tls_server_config.kye_file: unknown field",
        ),
        (
            TLS + "  client_ca_file: ca.pem\n  client_auth_type: RequireAnyClientCert\n",
            "5: tls_server_config.client_auth_type: RequireAnyClientCert accepts a client certificate without verifying it",
        ),
        (
            TLS + "  client_auth_type: RequestClientCert\n",
            "4: tls_server_config.client_auth_type: RequestClientCert accepts",
        ),
        (
            TLS + "  client_auth_type: Always\n",
            "4: tls_server_config.client_auth_type: 'Always' is not valid",
        ),
        (
            TLS + "  client_ca_file: ca.pem\n",
            "4: tls_server_config.client_ca_file: a client CA is set, but client_auth_type",
        ),
        (
            TLS
            + "  client_ca_file: ca.pem\n  client_auth_type: VerifyClientCertIfGiven\n  client_allowed_sans: [a]\n",
            "6: tls_server_config.client_allowed_sans: needs client_auth_type: RequireAndVerifyClientCert",
        ),
        (
            TLS
            + "  client_ca_file: ca.pem\n  client_auth_type: RequireAndVerifyClientCert\n  client_allowed_sans: []\n",
            "6: tls_server_config.client_allowed_sans: empty list would refuse every client",
        ),
        (
            TLS + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n",
            "4: tls_server_config.cipher_suites: 'TLS_RSA_WITH_RC4_128_SHA' is not a cipher suite",
        ),
        (TLS + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "lists only TLS 1.3 suites"),
        (
            TLS + "  curve_preferences: [X25519]\n",
            "4: tls_server_config.curve_preferences: Python's ssl can restrict the server to one NIST curve only",
        ),
        (TLS + "  curve_preferences: [CurveP256, CurveP384]\n", "one NIST curve only"),
        (TLS + "  curve_preferences: [P256]\n", "unknown curve 'P256'"),
        (
            TLS + "  min_version: TLS13\n  max_version: TLS12\n",
            "4: tls_server_config.min_version: TLS13 is above max_version TLS12",
        ),
        (TLS + "  min_version: TLS14\n", "4: tls_server_config.min_version: 'TLS14' is not valid"),
        (
            "tls_server_config:\n  cert_file: server.crt\n",
            "1: tls_server_config.key_file: missing one of key or key_file",
        ),
        (
            "tls_server_config:\n  key_file: server.key\n",
            "1: tls_server_config.cert_file: missing one of cert or cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: nope.crt\n  key_file: server.key\n",
            "2: tls_server_config.cert_file: cannot read: No such file or directory",
        ),
        (
            "tls_server_config:\n  cert_file: ca.pem\n  key_file: server.key\n",
            "3: tls_server_config.key_file: certificate and key do not load: key values mismatch",
        ),
        (
            TLS + "  client_ca_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n",
            "4: tls_server_config.client_ca_file: no CA certificate loads",
        ),
        (TLS + "  cert: x\n", "4: tls_server_config.cert: give cert or cert_file, not both"),
        (
            "tls_server_config:\n  min_version: TLS13\n",
            "2: tls_server_config.min_version: TLS is off (no cert_file), so this would do nothing",
        ),
        (
            "http_server_config:\n  headers:\n    Server: x\n",
            "3: http_server_config.headers.Server: this header cannot be set",
        ),
        (
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "3: http_server_config.headers.X-Frame-Options: 'allow' is not valid; expected one of deny, sameorigin",
        ),
        (
            'http_server_config:\n  headers:\n    Content-Security-Policy: "a\\nb"\n',
            "must not contain control characters",
        ),
        ("basic_auth_users:\n  alice: secret-pw\n", "2: basic_auth_users.alice: not a bcrypt hash"),
        (
            "basic_auth_users:\n  alice: " + "$2x$" + HASH[4:] + "\n",
            "2: basic_auth_users.alice: not a bcrypt hash",
        ),
        (
            "basic_auth_users:\n  alice: " + HASH[:4] + "19" + HASH[6:] + "\n",
            "2: basic_auth_users.alice: bcrypt cost 19: sonde-exporter accepts 4 to 18",
        ),
        (
            "rate_limit:\n  interval: 1s\n",
            "1: rate_limit.burst: must be at least 1 when interval is set",
        ),
        ("rate_limit:\n  interval: fast\n  burst: 1\n", "2: rate_limit.interval: invalid duration"),
        (
            "rate_limit:\n  per_client:\n    interval: 0s\n    burst: 1\n",
            "2: rate_limit.per_client: interval must be above 0",
        ),
        (
            "rate_limit:\n  per_client:\n    interval: 1s\n    burst: 0\n",
            "4: rate_limit.per_client.burst: expected greater than or equal to 1",
        ),
        ("basic_auth_users:\n  a: x\n  a: y\n", "3: basic_auth_users.a: defined twice"),
        ("tls_server_config:\n  kye_file:\n", "2: tls_server_config.kye_file: unknown field"),
        ("tls_server_config: [\n", "invalid YAML"),
    ],
)
def test_errors_name_file_line_and_field(load, pki: Pki, text: str, message: str) -> None:  # type: ignore[no-untyped-def]
    text_error = error(load, text)
    assert f"{pki.dir / 'web.yml'}:" in text_error
    assert message in text_error, text_error
    assert "secret-pw" not in text_error and HASH[7:] not in text_error  # never a secret


def test_a_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read web config file"):
        load_web_config(tmp_path / "nope.yml")
