"""Email module configuration, targets and header parsing: no mail server needed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from helpers import probe

from sonde_exporter.config import ConfigError, dump_yaml, parse_config
from sonde_exporter.prober_base import TargetError
from sonde_exporter.probers import get_prober
from sonde_exporter.probers.email.headers import auth_results, parse_headers
from sonde_exporter.targets import EmailTarget, parse_email_target

REPO = Path(__file__).resolve().parent.parent


def email_config(smtp: str = "", receive: str = "", extra: str = "") -> str:
    smtp = smtp or "url: smtp://mail.example.com:587\nstarttls: never"
    receive = receive or "url: pop3s://mail.example.com\nusername: probe\npassword: pw"
    return (
        "modules:\n  mail:\n    prober: email\n    email:\n      smtp:\n"
        + textwrap.indent(smtp, " " * 8)
        + "\n      receive:\n"
        + textwrap.indent(receive, " " * 8)
        + "\n      from: probe@example.com\n      to: probe@example.com\n"
        + textwrap.indent(extra, " " * 6)
    )


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yml")
    return str(info.value)


def test_shipped_config_passes_config_check_without_secrets_in_the_environment():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SONDE_")}
    result = subprocess.run(
        [sys.executable, "-m", "sonde_exporter", "--config.check", "--config.file", "config.yml"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    config = parse_config((REPO / "config.yml").read_text(), "config.yml")
    email = config.modules["email_roundtrip"].email
    assert email is not None and email.smtp.password_env == "SONDE_EMAIL_PASSWORD"


def test_defaults_and_parsed_urls():
    email = parse_config(email_config(), "c.yml").modules["mail"].email
    assert email is not None
    assert email.smtp.parsed_url.port == 587 and not email.smtp.parsed_url.implicit_tls
    assert email.receive.parsed_url.port == 995 and email.receive.parsed_url.implicit_tls
    assert email.receive.starttls == "always" and email.receive.poll_interval == 1.0
    assert email.delete is True and email.stale_after == 3600
    assert email.receive.secret == "pw" and email.smtp.secret is None
    assert email.smtp.ehlo_name  # this machine's name, looked up once at load


def test_password_file_is_read_at_load_and_never_shown(tmp_path: Path):
    secret = tmp_path / "pw"
    secret.write_text("s3cret file pw\n")
    text = email_config(smtp=f"url: smtps://mx.example.com\nusername: u\npassword_file: {secret}")
    config = parse_config(text, "c.yml")
    email = config.modules["mail"].email
    assert email is not None and email.smtp.secret == "s3cret file pw"
    dumped = str(config.model_dump(mode="json"))
    assert "s3cret" not in dumped and "'password': '<secret>'" in dumped
    assert "'from': 'probe@example.com'" in dumped


def test_password_env(monkeypatch: pytest.MonkeyPatch):
    text = email_config(
        receive="url: imaps://m.example.com\nusername: u\npassword_env: SONDE_TEST_PW"
    )
    monkeypatch.setenv("SONDE_TEST_PW", "from-env")
    email = parse_config(text, "c.yml").modules["mail"].email
    assert email is not None and email.receive.secret == "from-env"
    assert email.receive.missing_password() is None


def test_a_password_written_as_password_env_is_not_repeated_in_the_error():
    text = email_config(receive="url: imaps://m.example.com\nusername: u\npassword_env: hunter2 x")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.yml")
    assert "password_env must name an environment variable" in str(caught.value)
    assert "hunter2" not in str(caught.value)


async def test_unset_password_env_loads_but_fails_probes_before_any_traffic(
    exporter_client, monkeypatch: pytest.MonkeyPatch
):
    """A config is checked where the secrets are not (CI, a fresh clone); probes say why."""
    monkeypatch.delenv("SONDE_TEST_PW", raising=False)
    text = email_config(
        smtp="url: smtp://127.0.0.1:1\nusername: u\npassword_env: SONDE_TEST_PW",
        receive="url: imaps://127.0.0.1:1\nusername: u\npassword_env: SONDE_TEST_PW",
    )
    client = await exporter_client(text)
    response = await client.get("/probe", params={"module": "mail", "debug": "true"})
    body = await response.text()
    assert 'probe_failure_reason{reason="smtp_auth"} 1' in body
    assert "environment variable SONDE_TEST_PW (password_env) is not set" in body
    assert "Dialing" not in body  # nothing was contacted (and only loopback could be)


@pytest.mark.parametrize(
    ("smtp", "message"),
    [
        ("url: smtp://u:p@mx.example.com", "credentials do not belong in the URL"),
        ("url: http://mx.example.com", "must start with one of smtp://, smtps://"),
        ("url: smtps://mx.example.com\nstarttls: never", "starttls applies to smtp://"),
        ("url: smtp://mx.example.com/path", "no path"),
        ("url: smtp://mx.example.com\nusername: u", "none of password"),
        ("url: smtp://mx.example.com\npassword: p", "username is empty"),
        ("url: smtp://m.example.com\nusername: u\npassword: p\npassword_env: X", "only one"),
        ("url: smtp://mx.example.com\nhelo: 'bad name'", "helo"),
        ("url: smtp://mx.example.com:0", "port '0' is not a number from 1 to 65535"),
        ("url: smtps://mx.example.com:0", "port '0' is not a number from 1 to 65535"),
    ],
)
def test_smtp_errors_name_the_problem(smtp: str, message: str):
    assert message in error_of(email_config(smtp=smtp))


@pytest.mark.parametrize(
    ("receive", "message"),
    [
        ("url: pop3://m.example.com\nusername: u\npassword: p\nmailbox: X", "imap"),
        ("url: imap://m.example.com", "username is required"),
        ("url: imap://m.example.com\nusername: u\npassword: p\npoll_interval: 1ms", "10ms"),
        (
            "url: imap://m.example.com\nusername: u\npassword_file: /nonexistent/pw",
            "cannot read '/nonexistent/pw'",
        ),
        ("url: imaps://m.example.com:0\nusername: u\npassword: p", "port '0' is not a number"),
    ],
)
def test_receive_errors_name_the_problem(receive: str, message: str):
    assert message in error_of(email_config(receive=receive))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('subject_prefix: "a\\nBcc: x@y"', "line breaks"),
        ("stale_after: -1s", "must not be negative"),
    ],
)
def test_mail_settings_errors_name_the_problem(extra: str, message: str):
    assert message in error_of(email_config(extra=extra))


def test_addresses_must_be_plain_ascii():
    text = email_config().replace("from: probe@example.com", "from: prüfer@example.com")
    assert "only ASCII addresses" in error_of(text)
    text = email_config().replace("to: probe@example.com", "to: Probe <probe@example.com>")
    assert "is not a mail address" in error_of(text)


def test_error_names_file_line_and_field():
    text = email_config().replace("to: probe@example.com", "to: not-an-address")
    assert error_of(text).startswith("c.yml:13: modules.mail.email.to:")


@pytest.mark.parametrize(
    ("smtp", "receive", "where"),
    [
        ("url: smtps://mx.example.com\nstarttls: never", "", "7: modules.mail.email.smtp.starttls"),
        (
            "",
            "url: imaps://m.example.com\nusername: u\npassword: p\nstarttls: always",
            "12: modules.mail.email.receive.starttls",
        ),
        (
            "",
            "url: pop3://m.example.com\nusername: u\npassword: p\nmailbox: Probes",
            "12: modules.mail.email.receive.mailbox",
        ),
        ("url: smtp://mx.example.com:0", "", "6: modules.mail.email.smtp.url"),
    ],
)
def test_errors_point_at_the_offending_setting_not_its_block(smtp: str, receive: str, where: str):
    """starttls under an implicit-TLS URL is wrong on the starttls line, not on `smtp:`."""
    assert error_of(email_config(smtp=smtp, receive=receive)).startswith(f"c.yml:{where}:")


def test_dumped_email_modules_load_back():
    """/config prints dump_yaml; an implicit-TLS URL must not come back with starttls (nor a
    POP3 URL with mailbox), which the loader refuses."""
    modules = [
        email_config(
            smtp="url: smtps://mx.example.com\nusername: u\npassword: p",
            receive="url: imaps://m.example.com\nusername: u\npassword: p\nmailbox: Probes",
        ),
        email_config(receive="url: pop3://m.example.com\nusername: u\npassword: p"),
    ]
    config = parse_config(modules[0] + modules[1].replace("modules:\n  mail:", "  pop3:"), "c.yml")
    dumped = dump_yaml(config)
    assert "starttls: never" in dumped  # the smtp:// module keeps its setting
    again = parse_config(dumped, "dumped.yml")
    assert again.model_dump(mode="json") == config.model_dump(mode="json")
    email = again.modules["mail"].email
    assert email is not None and email.receive.mailbox == "Probes"
    assert "starttls" not in yaml.safe_dump(email.model_dump(mode="json"))


@pytest.mark.parametrize(
    ("target", "parsed"),
    [
        ("", EmailTarget()),
        ("mx.example.com", EmailTarget("mx.example.com", None)),
        ("mx.example.com:2525", EmailTarget("mx.example.com", 2525)),
        ("[::1]:25", EmailTarget("::1", 25)),
        ("[::1]", EmailTarget("::1", None)),
        ("smtps://mx.example.com", EmailTarget("mx.example.com", 465, True)),
        ("smtp://127.0.0.1:2525/", EmailTarget("127.0.0.1", 2525, False)),
    ],
)
def test_email_targets(target: str, parsed: EmailTarget):
    assert parse_email_target(target) == parsed


@pytest.mark.parametrize(
    "target",
    [
        "imap://mx.example.com",
        "smtp://u:p@mx.example.com",
        "smtp://mx/x",
        "mx:0",
        "smtp://mx.example.com:0",
        "smtps://[::1]:0",
        "a b",
        "[1.2.3.4]",
        "::1",  # IPv6 without brackets: in 2001:db8::1:2525 the port would vanish
        "2001:db8::1:2525",
        "smtp://2001:db8::1:2525",
    ],
)
def test_bad_email_targets(target: str):
    with pytest.raises(TargetError):
        parse_email_target(target)


async def test_empty_target_is_still_an_error_for_other_probers(exporter_client):
    assert get_prober("email").accepts_empty_target and not get_prober("tcp").accepts_empty_target
    client = await exporter_client("modules:\n  tcp:\n    prober: tcp\n")
    assert await probe(client, module="tcp", target="") == (400, "target parameter: missing\n")


def test_authentication_results_parsing():
    assert auth_results(
        [
            "mx.example.net; dkim=fail (bad sig) header.d=a.example; dkim=pass header.d=b.example;"
            " spf=pass (sender ok) smtp.mailfrom=a.example; dmarc=bestguesspass; arc=pass",
            "older.example; dkim=neutral; spf=fail; dmarc=fail",
        ]
    ) == (("dkim", "pass"), ("spf", "pass"), ("dmarc", "other"))
    assert auth_results(["mx.example.net 1; none"]) == ()
    assert auth_results(["mx; SPF = SoftFail (x; y) smtp.mailfrom=z"]) == (("spf", "softfail"),)
    assert auth_results(["mx; dkim/1=pass"]) == (("dkim", "pass"),)
    assert auth_results(["mx; dkim=fail", "relay; spf=pass"]) == (("dkim", "fail"), ("spf", "pass"))


def test_header_parsing_accepts_only_well_formed_tokens():
    info = parse_headers(
        b"X-Sonde-Probe: " + b"ab" * 16 + b"\r\nDate: Thu, 01 Jan 2026 00:00:00 +0000\r\n\r\n"
    )
    assert info.token == "ab" * 16 and info.sent == 1767225600
    assert parse_headers(b"X-Sonde-Probe: not-a-token\r\n\r\n").token is None
    assert parse_headers(b"Subject: hello\r\nDate: garbage\r\n\r\n") == parse_headers(b"\r\n")


MAIL_STACK_CHECK = """
import asyncio, sys
from aiohttp.test_utils import TestClient, TestServer
from sonde_exporter.exporter import Exporter
from sonde_exporter.app import build_app

async def main(config_path):
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with TestClient(TestServer(build_app(Exporter.from_file(config_path)))) as client:
        for path in ("/metrics", "/config", f"/probe?module=tcp&target=127.0.0.1:{port}"):
            response = await client.get(path)
            assert response.status == 200, await response.text()
    server.close()
    heavy = ("aiosmtplib", "cryptography", "sonde_exporter.probers.email")
    print(" ".join(sorted(m for m in sys.modules if m.startswith(heavy))))

asyncio.run(main(sys.argv[1]))
"""


def test_an_exporter_without_email_modules_never_loads_the_mail_stack(tmp_path: Path):
    """aiosmtplib, the mail clients and cryptography cost memory and start-up time: a TCP-only
    exporter that served /metrics, /config and a probe has loaded only the email counters."""
    config = tmp_path / "config.yml"
    config.write_text("modules:\n  tcp:\n    prober: tcp\n")
    result = subprocess.run(
        [sys.executable, "-c", MAIL_STACK_CHECK, str(config)],
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert loaded == ["sonde_exporter.probers.email", "sonde_exporter.probers.email.counters"]
