"""The configuration file as typed data.

Everything a prober needs is validated here, once, at load time: regexes are compiled and TLS
contexts are built before the first probe runs. Probers receive these frozen objects and never
see raw YAML. Errors name the file, the line and the field.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    SecretStr,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from .durations import format_duration, parse_duration
from .tls import build_client_context


class ConfigError(Exception):
    """A config file that cannot be used; the message has one line per problem."""


def _duration(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("expected a duration string such as 5s, 1m30s or 250ms")
    if value.strip().startswith("-"):
        raise ValueError(f"duration {value!r} must not be negative")
    seconds = parse_duration(value)
    if not math.isfinite(seconds):
        raise ValueError(f"duration {value!r} is too large")
    return seconds


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""Seconds (never negative), written in the file as a Go-style duration."""


def _regex(value: object) -> re.Pattern[bytes]:
    if not isinstance(value, str):
        raise ValueError("expected a regular expression string")
    try:
        return re.compile(value.encode())
    except re.error as exc:
        raise ValueError(f"invalid regular expression {value!r}: {exc}") from None


Regex = Annotated[
    re.Pattern[bytes],
    BeforeValidator(_regex),
    PlainSerializer(lambda p: p.pattern.decode(), return_type=str),
]
"""A regular expression compiled at load, matched against raw bytes."""

REDACTED = "<secret>"
Secret = Annotated[SecretStr, PlainSerializer(lambda _: REDACTED, return_type=str)]
"""A password or token: rendered as <secret> in /config and debug output (see dump_yaml).

Type every password-like field as Secret; a test fails for any config field whose name looks
like a secret but whose type is not.
"""

IpProtocol = Literal["ip4", "ip6"]
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(Strict):
    """prometheus/common's TLS client settings. The SSL context is built once, here."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str = ""
    insecure_skip_verify: bool = False
    min_version: TlsVersion | None = None
    max_version: TlsVersion | None = None
    _context: ssl.SSLContext = PrivateAttr()

    @model_validator(mode="after")
    def _build_context(self, info: ValidationInfo) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be set together")
        ca_file, cert_file, key_file = (
            config_path(f, info) for f in (self.ca_file, self.cert_file, self.key_file)
        )
        # Building a context reads the system CA bundle (tens of ms), so modules with the same
        # settings share one context within a load; a reload builds afresh (files may change).
        shared: dict[Any, ssl.SSLContext] = (info.context or {}).get("ssl_contexts", {})
        key = (
            ca_file,
            cert_file,
            key_file,
            self.insecure_skip_verify,
            self.min_version,
            self.max_version,
        )
        if key not in shared:
            shared[key] = build_client_context(
                ca_file=ca_file,
                cert_file=cert_file,
                key_file=key_file,
                insecure_skip_verify=self.insecure_skip_verify,
                min_version=self.min_version,
                max_version=self.max_version,
            )
        self._context = shared[key]
        return self

    @property
    def context(self) -> ssl.SSLContext:
        return self._context


def config_path(path: str | None, info: ValidationInfo) -> str | None:
    """A file named in the config: relative paths are relative to the config file's directory,
    as in prometheus/common (and so in blackbox_exporter)."""
    base = (info.context or {}).get("directory")
    if path is None or base is None:
        return path
    return str(Path(base, path))


def _latin1(value: str) -> bytes:
    """YAML escapes like "\\x00" mean bytes; anything beyond latin-1 is sent as UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class Label(Strict):
    name: str
    value: str

    @field_validator("name")
    @classmethod
    def _label_name(cls, value: str) -> str:
        if not _LABEL_NAME.fullmatch(value) or value.startswith("__"):
            raise ValueError(
                f"{value!r} is not a valid Prometheus label name "
                "(letters, digits and _, not starting with a digit or __)"
            )
        return value


class QueryStep(Strict):
    """One step of a TCP dialogue, run in the order expect, expect_bytes, send, starttls."""

    expect: Regex | None = None
    expect_bytes: str | None = None
    send: str | None = None
    starttls: bool = False
    labels: tuple[Label, ...] = ()

    @model_validator(mode="after")
    def _one_kind_of_expect(self) -> QueryStep:
        if self.expect is not None and self.expect_bytes is not None:
            raise ValueError("expect and expect_bytes cannot be used in the same step")
        if self.expect_bytes == "":
            raise ValueError("expect_bytes must not be empty")
        names = [label.name for label in self.labels]
        if len(set(names)) != len(names):
            raise ValueError("labels: a label name may appear only once")
        return self

    @cached_property
    def expect_bytes_raw(self) -> bytes | None:
        return None if self.expect_bytes is None else _latin1(self.expect_bytes)

    @cached_property
    def send_raw(self) -> bytes | None:
        return None if self.send is None else _latin1(self.send)


class AddressChoice(Strict):
    """How a network prober picks the address to probe from and to (see resolve.py)."""

    preferred_ip_protocol: IpProtocol = "ip4"
    ip_protocol_fallback: bool = True
    source_ip_address: str | None = None

    @field_validator("source_ip_address")
    @classmethod
    def _ip_literal(cls, value: str | None) -> str | None:
        if value is not None:
            _check_ip(value)
        return value


class TcpModule(AddressChoice):
    query_response: tuple[QueryStep, ...] = ()
    tls: bool = False
    tls_config: TlsConfig = Field(default_factory=dict, validate_default=True)

    @model_validator(mode="after")
    def _one_expect_info(self) -> TcpModule:
        label_sets = {tuple(label.name for label in s.labels) for s in self.query_response}
        if len(label_sets - {()}) > 1:
            raise ValueError(
                "query_response: steps with labels must all use the same label names "
                "(they are series of one metric, probe_expect_info)"
            )
        return self


class IcmpModule(AddressChoice):
    """The `icmp:` block: how many echo requests, how far apart, and when the probe succeeds."""

    count: int = Field(default=3, ge=1, le=100)
    interval: Duration = 0.1
    payload_size: int = Field(default=56, ge=0, le=65507)
    ttl: int | None = Field(default=None, ge=1, le=255)
    dont_fragment: bool = False
    max_packet_loss_ratio: float | None = Field(default=None, ge=0, le=1)

    @field_validator("interval")
    @classmethod
    def _interval_range(cls, value: float) -> float:
        if not 0 <= value <= 60:
            raise ValueError("interval must be from 0s to 1m")
        return value

    @property
    def send_span(self) -> float:
        """Seconds from the first echo request to the last."""
        return (self.count - 1) * self.interval


def _check_ip(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


StartTls = Literal["always", "opportunistic", "never"]
_SMTP_SCHEMES = {"smtp": (25, False), "smtps": (465, True)}
_RECEIVE_SCHEMES = {
    "pop3": (110, False),
    "pop3s": (995, True),
    "imap": (143, False),
    "imaps": (993, True),
}


@dataclass(frozen=True, slots=True)
class MailUrl:
    """A mail server URL taken apart: scheme, host, port and whether TLS starts at connect."""

    scheme: str
    host: str
    port: int
    implicit_tls: bool


def parse_mail_url(value: str, schemes: dict[str, tuple[int, bool]]) -> MailUrl:
    """`scheme://host[:port]`; ValueError says what is wrong. Credentials never go in URLs."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"invalid URL {value!r}: {exc}") from None
    names = ", ".join(f"{s}://" for s in schemes)
    if parts.scheme not in schemes:
        raise ValueError(f"URL {value!r} must start with one of {names}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("credentials do not belong in the URL; use username and password_file")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"URL {value!r} must be scheme://host[:port] with no path or query")
    if not parts.hostname:
        raise ValueError(f"URL {value!r} has no host")
    default_port, implicit_tls = schemes[parts.scheme]
    return MailUrl(parts.scheme, parts.hostname, port or default_port, implicit_tls)


def _header_safe(value: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("must not contain control characters or line breaks")
    return value


def _address(value: str) -> str:
    _header_safe(value)
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

    url: str
    username: str = ""
    password: Secret | None = None
    password_file: str | None = None
    password_env: str | None = None
    tls_config: TlsConfig = Field(default_factory=dict, validate_default=True)
    _secret: SecretStr | None = PrivateAttr(default=None)

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
        _header_safe(self.username)
        if self.password_env is not None and not _ENV_NAME.fullmatch(self.password_env):
            raise ValueError(f"password_env {self.password_env!r} is not a variable name")
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
        if any(c in secret for c in "\r\n\0"):
            raise ValueError("the password must not contain line breaks or NUL")
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


@cache
def _local_fqdn() -> str:
    return socket.getfqdn() or "localhost"


class SmtpSettings(MailServer):
    """Where and how the probe mail is sent."""

    starttls: StartTls = "always"
    helo: str = ""
    """EHLO name; empty means this machine's fully qualified name (looked up once)."""
    _url: MailUrl = PrivateAttr()
    _helo: str = PrivateAttr()

    @model_validator(mode="after")
    def _check(self) -> SmtpSettings:
        self._url = parse_mail_url(self.url, _SMTP_SCHEMES)
        if self._url.implicit_tls and "starttls" in self.model_fields_set:
            raise ValueError("starttls applies to smtp:// URLs; smtps:// is TLS from the start")
        if self.helo and not re.fullmatch(r"[A-Za-z0-9.\[\]:_-]+", self.helo):
            raise ValueError(f"helo {self.helo!r} is not a hostname or address literal")
        self._helo = self.helo or _local_fqdn()
        return self

    @property
    def parsed_url(self) -> MailUrl:
        return self._url

    @property
    def ehlo_name(self) -> str:
        return self._helo


class ReceiveSettings(MailServer):
    """The mailbox the probe mail should arrive in."""

    starttls: StartTls = "always"
    poll_interval: Duration = 1.0
    mailbox: str = "INBOX"
    """IMAP folder to watch (printable ASCII); POP3 has only the one mailbox."""
    _url: MailUrl = PrivateAttr()
    _key: tuple[str, str] = PrivateAttr()

    @model_validator(mode="after")
    def _check(self) -> ReceiveSettings:
        self._url = parse_mail_url(self.url, _RECEIVE_SCHEMES)
        if self._url.implicit_tls and "starttls" in self.model_fields_set:
            raise ValueError(
                "starttls applies to pop3:// and imap:// URLs; pop3s:// and imaps:// are TLS "
                "from the start"
            )
        if not self.username:
            raise ValueError("username is required: POP3 and IMAP always log in")
        if not 0.01 <= self.poll_interval <= 600:
            raise ValueError("poll_interval must be between 10ms and 10m")
        if not self.mailbox or not all(0x20 <= ord(c) < 0x7F for c in self.mailbox):
            raise ValueError("mailbox must be a non-empty printable ASCII name")
        if self._url.scheme.startswith("pop3") and "mailbox" in self.model_fields_set:
            raise ValueError("mailbox applies to imap:// and imaps:// only")
        self._key = (self.model_dump_json(), self.secret or "")
        return self

    @property
    def mailbox_key(self) -> tuple[str, str]:
        """Equal for equal receive blocks (password included), across modules and reloads."""
        return self._key

    @property
    def parsed_url(self) -> MailUrl:
        return self._url


class EmailModule(Strict):
    """Round trip: send a mail carrying a token over SMTP, wait for it in a POP3/IMAP mailbox."""

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
        return _header_safe(value)

    @field_validator("stale_after")
    @classmethod
    def _stale(cls, value: float) -> float:
        if value < 0:
            raise ValueError("stale_after must not be negative")
        return value

    @model_serializer(mode="wrap")
    def _dump_from(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Show `from` as written in the file (Python cannot name a field `from`)."""
        data: dict[str, Any] = handler(self)
        return {("from" if key == "mail_from" else key): value for key, value in data.items()}


ProberName = Literal["tcp", "icmp", "email"]
"""Every prober name; kept equal to the keys of probers.PROBERS (a test checks it)."""

_PROBER_BLOCKS = ("tcp", "icmp", "email")


class Module(Strict):
    """One entry under `modules:`: which prober, its timeout, and that prober's block."""

    prober: ProberName
    timeout: Duration = 0.0
    tcp: TcpModule | None = None
    icmp: IcmpModule | None = None
    email: EmailModule | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_own_block(cls, data: Any) -> Any:
        """A module without its prober's block gets that block's defaults."""
        if isinstance(data, dict) and data.get("prober") in _PROBER_BLOCKS:
            own = data["prober"]
            if data.get(own) is None:
                data = {**data, own: {}}
        return data

    @field_validator(*_PROBER_BLOCKS)
    @classmethod
    def _only_own_block(cls, value: Any, info: ValidationInfo) -> Any:
        prober = info.data.get("prober")
        if value is not None and prober is not None and prober != info.field_name:
            raise ValueError(
                f"a module with prober {prober!r} cannot have a {info.field_name!r} block"
            )
        return value

    @model_validator(mode="after")
    def _icmp_fits_timeout(self) -> Module:
        if self.icmp is not None and self.timeout > 0 and self.icmp.send_span >= self.timeout:
            raise ValueError(
                f"icmp: sending {self.icmp.count} echo requests {self.icmp.interval:g}s apart "
                f"takes {self.icmp.send_span:g}s, which does not fit the {self.timeout:g}s timeout"
            )
        return self

    @property
    def settings(self) -> BaseModel:
        """The block of this module's own prober (`tcp:` for prober tcp, and so on)."""
        block: BaseModel = getattr(self, self.prober)
        return block


class Config(Strict):
    modules: dict[Annotated[str, Field(min_length=1)], Module]


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raise ConfigError naming file, line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    return parse_config(text, str(path))


def parse_config(text: str, filename: str) -> Config:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        raise ConfigError(f"{filename}: the file is empty; expected a 'modules:' mapping")
    try:
        lines = {tuple(map(str, path)): line for path, line in _key_lines(root, ())}
    except ConfigError as exc:
        raise ConfigError(f"{filename}:{exc}") from None
    try:
        context = {"directory": Path(filename).parent, "ssl_contexts": {}}
        return Config.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(
            "\n".join(_describe(err, filename, lines) for err in exc.errors())
        ) from None


def _key_lines(
    node: yaml.Node | None, path: tuple[Any, ...]
) -> Iterator[tuple[tuple[Any, ...], int]]:
    """Yield (path, line) for every mapping key and sequence item; reject duplicate keys."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise ConfigError(
                    f"{key_node.start_mark.line + 1}: {_field((*path, key))}: defined twice"
                )
            seen.add(key)
            yield (*path, key), key_node.start_mark.line + 1
            yield from _key_lines(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield (*path, index), item.start_mark.line + 1
            yield from _key_lines(item, (*path, index))


def _field(loc: tuple[Any, ...]) -> str:
    """modules.smtp.tcp.query_response[2].expect"""
    out = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    return out.lstrip(".") or "(top level)"


def _describe(err: Any, filename: str, lines: dict[tuple[str, ...], int]) -> str:
    loc = tuple(str(p) for p in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    kind = err["type"]
    if loc and loc[-1] == "[key]":  # a mapping key of the wrong type, such as a number
        loc, message = loc[:-1], "keys must be non-empty strings"
    elif kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "missing":
        message = "required field is missing"
    elif kind in ("tuple_type", "list_type"):
        message = "expected a list"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = "expected a mapping of keys to values"
    elif kind == "literal_error":  # only names and versions: never a secret
        message = f"{err['input']!r} is not valid; {message.replace('Input should be', 'expected')}"
    else:
        message = message.replace("Input should be", "expected")
    line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), 1)
    return f"{filename}:{line}: {_field(tuple(err['loc'])[: len(loc)])}: {message}"


def dump_yaml(model: BaseModel) -> str:
    """A model as YAML, the form of /config and debug output: durations as strings, secrets
    as <secret> (SecretStr not typed as Secret still shows only asterisks)."""
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
