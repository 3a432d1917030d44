"""Email modules for tests against the throw-away mail stack (tests/mailstack.py): the SMTP and
receive blocks for each mode, assembled into a module config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailstack import MailStack


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


def merge(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """base updated with overrides; an override of None removes the key."""
    out = {**base, **(overrides or {})}
    return {k: v for k, v in out.items() if v is not None}


def email_module(
    stack: MailStack,
    password_file: Path,
    send: str = "smtp",
    receive: str = "pop3",
    timeout: str = "5s",
    smtp: dict[str, Any] | None = None,
    recv: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """A module: `send`/`receive` pick the modes, `smtp`/`recv` override their blocks."""
    smtp = merge(smtp_block(stack, send, password_file), smtp)
    receive_settings = merge(receive_block(stack, receive), recv)
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
