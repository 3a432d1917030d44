"""The email prober against a real Postfix + Dovecot on loopback (tests/mailstack.py)."""

from __future__ import annotations

import asyncio
import os
import re
import smtplib
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import parse_metrics, probe
from mailstack import AUTHRES_SUBJECT, HOLD_SUBJECT, MailStack

from sonde_exporter.probers import mailbox as mailbox_module

SEND_MODES = ("smtp", "submission", "smtps")
RECEIVE_MODES = ("pop3", "pop3s", "imap", "imaps")


def smtp_block(stack: MailStack, mode: str, password_file: Path) -> dict[str, Any]:
    """Plain SMTP without AUTH, submission with STARTTLS + AUTH, or SMTPS + AUTH."""
    tls = {"tls_config": {"ca_file": str(stack.ca_file)}}
    if mode == "smtp":
        return {"url": stack.url("smtp"), "starttls": "never"}
    if mode == "submission":
        return {
            "url": stack.url("submission"),
            "starttls": "always",
            "username": "tester",
            "password_file": str(password_file),
            **tls,
        }
    return {
        "url": stack.url("smtps"),
        "username": "tester",
        "password": stack.passwords["tester"],
        **tls,
    }


def receive_block(stack: MailStack, mode: str, user: str = "tester") -> dict[str, Any]:
    return {
        "url": stack.url(mode),
        "username": user,
        "password": stack.passwords[user],
        "poll_interval": "20ms",
        "tls_config": {"ca_file": str(stack.ca_file)},
    }


def email_module(
    stack: MailStack,
    password_file: Path,
    send: str = "smtp",
    receive: str = "pop3",
    timeout: str = "5s",
    **options: Any,
) -> dict[str, Any]:
    smtp = {**smtp_block(stack, send, password_file), **options.pop("smtp", {})}
    receive_settings = {**receive_block(stack, receive), **options.pop("receive", {})}
    return {
        "prober": "email",
        "timeout": timeout,
        "email": {
            "smtp": smtp,
            "receive": receive_settings,
            "from": stack.address(),
            "to": stack.address(),
            **options,
        },
    }


@pytest.fixture
def password_file(mail_stack: MailStack, tmp_path: Path) -> Path:
    path = tmp_path / "smtp-password"
    path.write_text(mail_stack.passwords["tester"] + "\n")
    return path


@pytest.fixture
async def email_client(exporter_client, mail_stack, password_file):  # type: ignore[no-untyped-def]
    """An exporter whose modules are given as {name: email_module(...) keyword arguments}."""

    async def start(modules: dict[str, dict[str, Any]]):  # type: ignore[no-untyped-def]
        config = {
            "modules": {
                name: email_module(mail_stack, password_file, **kw) for name, kw in modules.items()
            }
        }
        return await exporter_client(yaml.safe_dump(config))

    return start


def mail_files(stack: MailStack, user: str = "tester") -> list[Path]:
    """The mails on disk in a mailbox (Maildir new/ and cur/, read without Dovecot)."""
    root = stack.maildir(user)
    return [p for sub in ("new", "cur") for p in (root / sub).glob("*") if p.is_file()]


def probe_files(stack: MailStack, user: str = "tester") -> list[Path]:
    return [p for p in mail_files(stack, user) if b"X-Sonde-Probe:" in p.read_bytes()]


async def test_round_trip_every_send_and_receive_mode(email_client, mail_stack):
    modules = {
        f"{send}_{receive}": {"send": send, "receive": receive}
        for send in SEND_MODES
        for receive in RECEIVE_MODES
    }
    client = await email_client(modules)
    for name, kw in modules.items():
        status, body = await probe(client, module=name, target="")
        metrics = parse_metrics(body)
        assert status == 200
        assert metrics["probe_success"] == 1, (name, body)
        assert metrics["probe_email_send_success"] == 1
        assert 0 < metrics["probe_email_delivery_seconds"] < 1
        phases = {
            m.split('"')[1] for m in metrics if m.startswith("probe_email_duration_seconds{")
        }
        expected = {"smtp_connect", "smtp_send"}
        expected |= {"smtp_tls", "smtp_auth"} if kw["send"] != "smtp" else set()
        expected |= {f"receive_{p}" for p in ("connect", "tls", "auth", "retrieve", "delete")}
        assert phases == expected, name
        if kw["send"] != "smtp":
            assert metrics['probe_tls_version_info{version="TLS 1.3"}'] == 1
    assert probe_files(mail_stack) == []
