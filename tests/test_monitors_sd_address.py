"""/v1/sd names the exporter by --web.external-url, else by its first listen address: never by
the request. A client's Host header (a foreign one, or one with quotes and angle brackets) or
an absolute-form request line must not come back as a scrape target, since every Prometheus
reading /v1/sd would scrape it. The scrape timeout is the monitor's plus the --timeout-offset
in effect. Real servers, raw requests over a socket."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from api_harness import create_key
from monitor_tools import MODULES
from processes import Process

from sonde_exporter.cli import parse_args

HOSTILE_HOSTS = ["evil.example:666", "\"><img src=x onerror=alert(1)>'", "evil.example"]
MONITOR = {"name": "web", "module": "tcp", "target": "127.0.0.1:9", "interval": "10s"}
# the module's timeout is 1s (MODULES); each server below runs with another --timeout-offset


class Exporter:
    def __init__(self, tmp: Path, name: str, *flags: str) -> None:
        config = tmp / "sonde.yml"
        config.write_text(MODULES + yaml.safe_dump({"monitors": [MONITOR]}))
        db = tmp / f"{name}.db"
        self.key = create_key(db, "prometheus", ["sd:read"])
        argv = [
            *(sys.executable, "-m", "sonde_exporter", "--config.file", str(config)),
            *("--web.listen-address", "127.0.0.1:0", "--storage.path", str(db)),
            *("--monitors.scheduler", "off", *flags),
        ]
        self.process = Process(name, argv, tmp)
        self.port = self.process.wait_listening()

    def raw(self, request_line: str, host: str) -> tuple[str, list[dict[str, Any]]]:
        """GET /v1/sd as these exact bytes; the status line and the groups."""
        head = (
            f"{request_line}\r\nHost: {host}\r\nAuthorization: Bearer {self.key}\r\n"
            "Connection: close\r\n\r\n"
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(head.encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        header, _, body = answer.decode().partition("\r\n\r\n")
        for host_part in ("evil", "666", "<", "onerror", "'"):
            assert host_part not in body, body
        return header.split("\r\n")[0], json.loads(body)

    def every_request(self) -> Iterator[list[dict[str, Any]]]:
        """The groups, for each hostile Host and for an absolute-form request line."""
        for host in HOSTILE_HOSTS:
            status, groups = self.raw("GET /v1/sd HTTP/1.1", host)
            assert status == "HTTP/1.1 200 OK", (host, status)
            yield groups
        status, groups = self.raw("GET http://evil.example:666/v1/sd HTTP/1.1", "evil.example:666")
        assert status == "HTTP/1.1 200 OK", status
        yield groups


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sd-address")


def test_listen_address_and_timeout_offset(tmp: Path) -> None:
    exporter = Exporter(tmp, "listen", "--timeout-offset", "0.25")
    try:
        for groups in exporter.every_request():
            (group,) = groups
            assert group["targets"] == [f"127.0.0.1:{exporter.port}"]
            assert group["labels"]["__metrics_path__"] == "/probe"
            assert "__scheme__" not in group["labels"]  # the job's scheme decides
            assert group["labels"]["__scrape_timeout__"] == "1250ms"  # 1s + 0.25s, not 0.5s
    finally:
        exporter.process.stop()


def test_external_url(tmp: Path) -> None:
    exporter = Exporter(
        tmp,
        "external",
        "--web.external-url",
        "https://Sonde.example:9443/sonde/",
        "--timeout-offset",
        "2",
    )
    try:
        for groups in exporter.every_request():
            (group,) = groups
            assert group["targets"] == ["sonde.example:9443"]
            labels = group["labels"]
            assert labels["__metrics_path__"] == "/sonde/probe"  # a reverse proxy's prefix
            assert labels["__scheme__"] == "https"
            assert labels["__scrape_timeout__"] == "3000ms"  # 1s + 2s, within the 10s interval
    finally:
        exporter.process.stop()


@pytest.mark.parametrize(
    ("flags", "target", "path"),
    [
        ([], f"{socket.gethostname()}:10115", "/probe"),
        (["--web.listen-address", "0.0.0.0:9100"], f"{socket.gethostname()}:9100", "/probe"),
        (["--web.listen-address", "[::]:9100"], f"{socket.gethostname()}:9100", "/probe"),
        (
            ["--web.listen-address", "[::1]:9100", "--web.listen-address", ":1"],
            "[::1]:9100",
            "/probe",
        ),
        (["--web.external-url", "http://10.0.0.1"], "10.0.0.1:80", "/probe"),
        (["--web.external-url", "https://[2001:db8::1]/a/b"], "[2001:db8::1]:443", "/a/b/probe"),
    ],
)
def test_address_from_flags(flags: list[str], target: str, path: str) -> None:
    """A wildcard listen address names no one host: the machine's hostname, as Prometheus'
    default external URL; otherwise the first listen address, or the external URL."""
    address = parse_args(flags).address
    assert address.target(12345) == target
    assert address.labels()["__metrics_path__"] == path


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("sonde.example:9115", "expected an http:// or https:// URL"),
        ("ftp://sonde.example", "expected an http:// or https:// URL"),
        ('http://ev"il<b>/', "is not a valid hostname"),
        ("http://sonde.example:0", "port 0"),
        ("http://user:pw@sonde.example", "no user, query or fragment"),
        ("http://sonde.example/?a=b", "no user, query or fragment"),
        ("http://sonde.example/a b", "printable ASCII"),
        ("http://sonde.example\n.evil", "printable ASCII"),
        ("http://sonde.example/<x>", "characters a URL path cannot"),
    ],
)
def test_bad_external_url_is_refused(
    url: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--web.external-url", url])
    assert exit_.value.code == 2
    assert reason in capsys.readouterr().err
