"""The `email:` block: where the probe mail is sent, which mailbox it should reach, and how."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from functools import cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from ..targets import RECEIVE_SCHEMES, SMTP_SCHEMES, MailSchemes, MailUrl, parse_mail_url
from .address import AddressChoice
from .fields import Duration, Secret, Strict, config_path, duration_between, header_safe
from .tls import TlsConfig

__all__ = ["EmailModule", "MailUrl", "ReceiveSettings", "SmtpSettings", "parse_mail_url"]

StartTls = Literal["always", "opportunistic", "never"]


def _address(value: str) -> str:
    header_safe(value)
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in "<>" for c in value):
        raise ValueError(f"{value!r} is not a mail address (expected local@domain)")
    if not value.isascii():
        raise ValueError(f"{value!r}: only ASCII addresses are supported (no SMTPUTF8)")
    return value


class MailServer(Strict):
    """A mail server's URL, login and TLS settings; the password never leaves this object.

    Exactly one of `password`, `password_file` or `password_env` gives the password when a
    username is set. The file is read at load (trailing newline dropped); a missing file is
    a config error. The environment variable is read at load too, but an unset one is not:
    a config is checked where the deployment's secrets are absent (CI, a fresh clone), so
    the module loads and its probes fail with smtp_auth / receive_auth saying what is missing.
    """

    _SCHEMES: ClassVar[MailSchemes]
    url: str
    username: str = ""
    password: Secret | None = None
    password_file: str | None = None
    password_env: str | None = None
    tls_config: TlsConfig = Field(default_factory=dict, validate_default=True)
    starttls: StartTls = "always"
    _secret: SecretStr | None = PrivateAttr(default=None)
    _url: MailUrl = PrivateAttr()

    @field_validator("url")
    @classmethod
    def _url_form(cls, value: str) -> str:
        parse_mail_url(value, cls._SCHEMES)
        return value

    @field_validator("starttls")
    @classmethod
    def _plain_url_only(cls, value: StartTls, info: ValidationInfo) -> StartTls:
        """Checked on the field, so that an error points at the starttls line."""
        url = cls._url_of(info)
        if url is not None and url.implicit_tls:
            plain = " and ".join(f"{s}://" for s, (_, tls) in cls._SCHEMES.items() if not tls)
            raise ValueError(
                f"starttls applies to {plain} URLs; {url.scheme}:// is TLS from the start"
            )
        return value

    @classmethod
    def _url_of(cls, info: ValidationInfo) -> MailUrl | None:
        """The URL validated before this field; None when it was missing or wrong."""
        url = info.data.get("url")
        return None if url is None else parse_mail_url(url, cls._SCHEMES)

    @model_serializer(mode="wrap")
    def _dump_applicable(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave out the settings this URL's scheme refuses, so /config loads back as it is."""
        data: dict[str, Any] = handler(self)
        for name in self._inapplicable():
            data.pop(name, None)
        return data

    def _inapplicable(self) -> tuple[str, ...]:
        return ("starttls",) if self._url.implicit_tls else ()

    @property
    def parsed_url(self) -> MailUrl:
        return self._url

    @model_validator(mode="after")
    def _keep_url(self) -> MailServer:
        self._url = parse_mail_url(self.url, self._SCHEMES)
        if self.uses_tls:
            self.tls_config.require_context()
        return self

    @property
    def uses_tls(self) -> bool:
        """Whether its sessions need a TLS context: a TLS URL, or STARTTLS not turned off."""
        return self._url.implicit_tls or self.starttls != "never"

    @model_validator(mode="after")
    def _load_password(self, info: ValidationInfo) -> MailServer:
        given = [
            name
            for name in ("password", "password_file", "password_env")
            if getattr(self, name) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"set only one of {' and '.join(given)}")
        if given and not self.username:
            raise ValueError(f"{given[0]} is set but username is empty")
        if self.username and not given:
            raise ValueError("username is set but none of password, password_file, password_env")
        header_safe(self.username)
        if self.password_env is not None and not _ENV_NAME.fullmatch(self.password_env):
            raise ValueError(  # not repeated: it may be the password, written in by mistake
                "password_env must name an environment variable (letters, digits and _); "
                "it names where the password is, not the password"
            )
        if self.password is not None:
            secret = self.password.get_secret_value()
        elif self.password_file is not None:
            secret = _read_password_file(config_path(self.password_file, info) or "")
        elif self.password_env is not None:
            secret = os.environ.get(self.password_env, "")
            if not secret:
                return self  # probes fail with the reason; a check without secrets passes
        else:
            return self
        if any(c in secret for c in "\r\n\0") or any(0xD800 <= ord(c) <= 0xDFFF for c in secret):
            raise ValueError("the password must not contain line breaks, NUL or lone surrogates")
        self._secret = SecretStr(secret)
        return self

    @property
    def secret(self) -> str | None:
        """The password itself: for the wire only, never for logs or messages."""
        return None if self._secret is None else self._secret.get_secret_value()

    def missing_password(self) -> str | None:
        """Why this server cannot log in although it should (an unset password_env)."""
        if self.username and self._secret is None:
            return f"environment variable {self.password_env} (password_env) is not set"
        return None


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _read_password_file(path: str) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not UTF-8 text"
        raise ValueError(f"password_file: cannot read {path!r}: {reason}") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ValueError(f"password_file: {path!r} is empty")
    return text


def _host_key(host: str) -> str:
    """One spelling per host: names in lower case without the root dot, addresses canonical."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower().removesuffix(".")


@cache
def _local_fqdn() -> str:
    return socket.getfqdn() or "localhost"


class SmtpSettings(MailServer):
    """Where and how the probe mail is sent."""

    _SCHEMES = SMTP_SCHEMES
    helo: str = ""
    """EHLO name; empty means this machine's fully qualified name (looked up once)."""
    _helo: str = PrivateAttr()

    @field_validator("helo")
    @classmethod
    def _host_name(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9.\[\]:_-]+", value):
            raise ValueError(f"helo {value!r} is not a hostname or address literal")
        return value

    @model_validator(mode="after")
    def _name_self(self) -> SmtpSettings:
        self._helo = self.helo or _local_fqdn()
        return self

    @property
    def ehlo_name(self) -> str:
        return self._helo


class ReceiveSettings(MailServer):
    """The mailbox the probe mail should arrive in."""

    _SCHEMES = RECEIVE_SCHEMES
    poll_interval: Annotated[Duration, duration_between(0.01, 600, "10ms to 10m")] = 1.0
    mailbox: str = "INBOX"
    """IMAP folder to watch (printable ASCII); POP3 has only the one mailbox."""
    _poller_key: tuple[str, str] = PrivateAttr()

    @field_validator("mailbox")
    @classmethod
    def _imap_folder(cls, value: str, info: ValidationInfo) -> str:
        if not value or not all(0x20 <= ord(c) < 0x7F for c in value):
            raise ValueError("mailbox must be a non-empty printable ASCII name")
        url = cls._url_of(info)
        if url is not None and url.scheme.startswith("pop3"):
            raise ValueError("mailbox applies to imap:// and imaps:// only")
        return value

    @model_validator(mode="after")
    def _check(self) -> ReceiveSettings:
        if not self.username:
            raise ValueError("username is required: POP3 and IMAP always log in")
        self._poller_key = (self.model_dump_json(), self.secret or "")
        return self

    def _inapplicable(self) -> tuple[str, ...]:
        pop3 = ("mailbox",) if self._url.scheme.startswith("pop3") else ()
        return super()._inapplicable() + pop3

    @property
    def poller_key(self) -> tuple[str, str]:
        """Equal for equal receive blocks (password included), across modules and reloads."""
        return self._poller_key


class EmailModule(AddressChoice):
    """Round trip: send a mail carrying a token over SMTP, wait for it in a POP3/IMAP mailbox.

    The address choice (preferred_ip_protocol, ...) applies to both servers."""

    smtp: SmtpSettings
    receive: ReceiveSettings
    mail_from: str = Field(alias="from")
    to: str
    subject_prefix: str = "sonde-exporter probe"
    delete: bool = True
    """Delete the probe mail once it is found (and late probe mails of this exporter)."""
    stale_after: Duration = 3600.0
    """Probe mails older than this are deleted when seen, whoever sent them; 0 turns it off."""

    @field_validator("mail_from", "to")
    @classmethod
    def _addresses(cls, value: str) -> str:
        return _address(value)

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return header_safe(value)

    @field_validator("stale_after")
    @classmethod
    def _stale(cls, value: float) -> float:
        if value < 0:
            raise ValueError("stale_after must not be negative")
        return value

    def credentials_at_stake(self, smtp_host: str) -> bool:
        """Whether sending through `smtp_host` (a target's override) would hand the SMTP
        login to a server other than the module's own (its smtp and receive hosts)."""
        if not self.smtp.username:
            return False
        own = {_host_key(self.smtp.parsed_url.host), _host_key(self.receive.parsed_url.host)}
        return _host_key(smtp_host) not in own

    @model_serializer(mode="wrap")
    def _dump_from(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Show `from` as written in the file (Python cannot name a field `from`)."""
        data: dict[str, Any] = handler(self)
        return {("from" if key == "mail_from" else key): value for key, value in data.items()}
