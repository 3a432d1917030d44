"""The configuration file as typed data.

Everything a prober needs is validated here, once, at load time: regexes are compiled and TLS
contexts are built before the first probe runs. Probers receive these frozen objects and never
see raw YAML. Errors name the file, the line and the field.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .durations import format_duration, parse_duration
from .tls import build_client_context


class ConfigError(Exception):
    """A config file that cannot be used; the message has one line per problem."""


def _duration(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("expected a duration string such as 5s, 1m30s or 250ms")
    return parse_duration(value)


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
]
"""Seconds, written in the file as a Go-style duration."""


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

Secret = Annotated[SecretStr, PlainSerializer(lambda _: "<secret>", return_type=str)]
"""A password or token: never rendered, not in /config, not in debug output."""

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
    def _build_context(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be set together")
        self._context = build_client_context(
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            insecure_skip_verify=self.insecure_skip_verify,
            min_version=self.min_version,
            max_version=self.max_version,
        )
        return self

    @property
    def context(self) -> ssl.SSLContext:
        return self._context


def _latin1(value: str) -> bytes:
    """YAML escapes like "\\x00" mean bytes; anything beyond latin-1 is sent as UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode()


class Label(Strict):
    name: str = Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    value: str


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
        if any(name.startswith("__") for name in names):
            raise ValueError("labels: names starting with __ are reserved")
        return self

    @property
    def expect_bytes_raw(self) -> bytes | None:
        return None if self.expect_bytes is None else _latin1(self.expect_bytes)

    @property
    def send_raw(self) -> bytes | None:
        return None if self.send is None else _latin1(self.send)


class TcpModule(Strict):
    preferred_ip_protocol: IpProtocol = "ip4"
    ip_protocol_fallback: bool = True
    source_ip_address: str | None = None
    query_response: tuple[QueryStep, ...] = ()
    tls: bool = False
    tls_config: TlsConfig = Field(default_factory=TlsConfig)

    @field_validator("source_ip_address")
    @classmethod
    def _ip_literal(cls, value: str | None) -> str | None:
        if value is not None:
            _check_ip(value)
        return value

    @model_validator(mode="after")
    def _one_expect_info(self) -> TcpModule:
        label_sets = {tuple(label.name for label in s.labels) for s in self.query_response}
        if len(label_sets - {()}) > 1:
            raise ValueError(
                "query_response: steps with labels must all use the same label names "
                "(they are series of one metric, probe_expect_info)"
            )
        return self


def _check_ip(value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


ProberName = Literal["tcp"]
"""Every prober name; kept equal to the keys of probers.PROBERS (a test checks it)."""

_PROBER_BLOCKS = ("tcp",)


class Module(Strict):
    """One entry under `modules:`: which prober, its timeout, and that prober's block."""

    prober: ProberName
    timeout: Duration = 0.0
    tcp: TcpModule | None = None

    @model_validator(mode="before")
    @classmethod
    def _only_own_block(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("prober"), str):
            return data
        own = data["prober"]
        for block in _PROBER_BLOCKS:
            if block != own and data.get(block) is not None:
                raise ValueError(f"a module with prober {own!r} cannot have a {block!r} block")
        if own in _PROBER_BLOCKS and data.get(own) is None:
            data = {**data, own: {}}
        return data

    @field_validator("timeout")
    @classmethod
    def _not_negative(cls, value: float) -> float:
        if value < 0:
            raise ValueError("timeout must not be negative")
        return value

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
        lines = dict(_key_lines(root, ()))
    except ConfigError as exc:
        raise ConfigError(f"{filename}:{exc}") from None
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            "\n".join(_describe(err, filename, lines) for err in exc.errors())
        ) from None


def _key_lines(
    node: yaml.Node | None, path: tuple[Any, ...]
) -> Iterator[tuple[tuple[Any, ...], int]]:
    """Yield (path, line) for every mapping key and sequence item; reject duplicate keys."""
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise ConfigError(f"{key_node.start_mark.line + 1}: {key!r} is defined twice")
            seen.add(key)
            yield (*path, key), key_node.start_mark.line + 1
            yield from _key_lines(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield (*path, index), item.start_mark.line + 1
            yield from _key_lines(item, (*path, index))


def _describe(err: Any, filename: str, lines: dict[tuple[Any, ...], int]) -> str:
    loc = tuple(err["loc"])
    line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), 1)
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = "unknown field"
    elif err["type"] == "missing":
        message = "required field is missing"
    return f"{filename}:{line}: {field or '(top level)'}: {message}"
