"""One web config file (TLS and basic auth) for Debian's prometheus-blackbox-exporter and for
sonde-exporter: both accept it and answer the same credentials the same way."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import Process
from tcpservers import Pki
from webservers import (
    TCP_CONFIG,
    SecuredExporter,
    basic,
    bcrypt_hash,
    client_context,
    https_get,
    server_files,
)

pytestmark = pytest.mark.prometheus

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
ALICE_HASH = bcrypt_hash("alice-pw", 10)


@pytest.fixture
def both(pki: Pki) -> Iterator[dict[str, int]]:
    """The same web.yml in force on both exporters; their HTTPS ports by name."""
    assert shutil.which(BLACKBOX), f"{BLACKBOX} missing: install prometheus-blackbox-exporter"
    server_files(pki)
    web_config = f"""\
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  min_version: TLS12
http_server_config:
  headers:
    X-Frame-Options: deny
basic_auth_users:
  alice: {ALICE_HASH}
  bob: {bcrypt_hash("bob-pw", 10)}
"""
    ours = SecuredExporter(pki.dir, web_config)
    blackbox_config = pki.dir / "blackbox.yml"
    blackbox_config.write_text(TCP_CONFIG)
    argv = [
        BLACKBOX,
        f"--config.file={blackbox_config}",
        f"--web.config.file={Path(ours.web_file)}",
        "--web.listen-address=127.0.0.1:0",
    ]
    blackbox = Process("blackbox", argv, pki.dir)
    try:
        yield {"sonde-exporter": ours.port, "blackbox_exporter": blackbox.wait_listening()}
    finally:
        ours.stop()
        blackbox.stop()


def test_same_web_config_same_answers(both: dict[str, int], pki: Pki) -> None:
    cases = {
        "right password": basic("alice", "alice-pw"),
        "right password again (cached)": basic("alice", "alice-pw"),
        "other user": basic("bob", "bob-pw"),
        "wrong password": basic("alice", "bob-pw"),
        "unknown user": basic("carol", "alice-pw"),
        "stored hash as password": basic("alice", ALICE_HASH),
        "no credentials": None,
        "not basic": "Bearer alice-pw",
    }
    answers: dict[str, dict[str, tuple[int, str | None, str | None]]] = {}
    for name, port in both.items():
        answers[name] = {}
        for case, authorization in cases.items():
            answer = https_get(port, "/metrics", client_context(pki), authorization)
            answers[name][case] = (
                answer.status,
                answer.headers.get("WWW-Authenticate"),
                answer.headers.get("X-Frame-Options"),
            )
    assert answers["sonde-exporter"] == answers["blackbox_exporter"]
    assert answers["sonde-exporter"]["right password"] == (200, None, "deny")
    assert answers["sonde-exporter"]["unknown user"] == (401, "Basic", "deny")
