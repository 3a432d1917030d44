"""A real exporter (or blackbox_exporter) behind a web config, and HTTPS clients for it.

Used by the web config tests: the process listens on an ephemeral loopback port, the client
side is Python's own ssl with or without a client certificate.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import trustme
from helpers import parse_metrics
from processes import Process, wait_for
from tcpservers import Pki

EXPORTER = [sys.executable, "-m", "sonde_exporter"]
TCP_CONFIG = "modules:\n  tcp:\n    prober: tcp\n    timeout: 2s\n"


def bcrypt_hash(password: str, cost: int = 4) -> str:
    """Cost 4, bcrypt's least, unless the test is about cost: tests stay fast."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()


def basic(user: str, password: str | bytes) -> str:
    raw = password if isinstance(password, bytes) else password.encode()
    return "Basic " + base64.b64encode(user.encode() + b":" + raw).decode()


def server_files(pki: Pki, leaf: trustme.LeafCert | None = None, name: str = "server") -> None:
    """Write `leaf` (default: the pki's localhost leaf) as name.crt and name.key in pki.dir."""
    leaf = leaf or pki.leaf
    leaf.cert_chain_pems[0].write_to_path(pki.dir / f"{name}.crt")
    leaf.private_key_pem.write_to_path(pki.dir / f"{name}.key")


def client_context(
    pki: Pki,
    cert: tuple[str, str] | None = None,
    *,
    version: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    """Trusts the pki's CA; presents `cert` (cert_file, key_file) when given."""
    context = ssl.create_default_context(cafile=pki.ca_file)
    if cert is not None:
        context.load_cert_chain(*cert)
    if version is not None:
        context.minimum_version = context.maximum_version = version
    return context


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: str
    version: str | None
    peer_cert: bytes | None


def https_get(
    port: int,
    path: str,
    context: ssl.SSLContext,
    authorization: str | None = None,
    host: str = "127.0.0.1",
) -> Answer:
    """One request on a new connection; a refused handshake raises ssl.SSLError or OSError
    (under TLS 1.3 a rejected client certificate shows only on the first read)."""
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    try:
        headers = {"Authorization": authorization} if authorization else {}
        conn.request("GET", path, headers=headers)
        sock = conn.sock  # before the answer: with Connection: close it goes away with it
        assert isinstance(sock, ssl.SSLSocket)
        version, peer_cert = sock.version(), sock.getpeercert(binary_form=True)
        response = conn.getresponse()
        return Answer(
            response.status, response.headers, response.read().decode(), version, peer_cert
        )
    finally:
        conn.close()


def refused(port: int, context: ssl.SSLContext, path: str = "/metrics") -> str:
    """The error of a request the server's TLS refuses; fails if it is answered."""
    try:
        answer = https_get(port, path, context)
    except (ssl.SSLError, ConnectionError) as exc:  # a hang (timeout) is no refusal
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError(f"expected a refused handshake, got HTTP {answer.status}")


class SecuredExporter(Process):
    """sonde-exporter with `web.yml` (written from `web_config`) in `directory`."""

    def __init__(self, directory: Path, web_config: str, *flags: str) -> None:
        self.web_file = directory / "web.yml"
        self.web_file.write_text(textwrap.dedent(web_config))
        config = directory / "config.yml"
        config.write_text(TCP_CONFIG)
        argv = [
            *EXPORTER,
            "--config.file",
            str(config),
            "--web.config.file",
            str(self.web_file),
            "--web.listen-address",
            "127.0.0.1:0",
            *flags,
        ]
        super().__init__("sonde-exporter", argv, directory)
        self.port = self.wait_listening()

    def metric(self, context: ssl.SSLContext, name: str, authorization: str | None = None) -> float:
        answer = https_get(self.port, "/metrics", context, authorization)
        assert answer.status == 200, answer.body
        return parse_metrics(answer.body)[name]

    def wait_for_log(self, text: str) -> str:
        def found() -> str | None:
            return next((line for line in self.log().splitlines() if text in line), None)

        try:
            return wait_for(f"a log line with {text!r}", found)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; log:\n{self.log()}") from None
