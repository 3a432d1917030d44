"""The modules: which prober each one runs, its timeout, and that prober's settings block."""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from .email import EmailModule
from .fields import Duration, IpProtocol, Regex, Strict, check_ip, latin1
from .policies import CheckedAssertion, Retries, check_policy
from .tls import TlsConfig

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
        return None if self.expect_bytes is None else latin1(self.expect_bytes)

    @cached_property
    def send_raw(self) -> bytes | None:
        return None if self.send is None else latin1(self.send)


class AddressChoice(Strict):
    """How a network prober picks the address to probe from and to (see resolve.py)."""

    preferred_ip_protocol: IpProtocol = "ip4"
    ip_protocol_fallback: bool = True
    source_ip_address: str | None = None

    @field_validator("source_ip_address")
    @classmethod
    def _ip_literal(cls, value: str | None) -> str | None:
        if value is not None:
            check_ip(value)
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


ProberName = Literal["tcp", "icmp", "email"]
"""Every prober name; kept equal to the keys of probers.PROBERS (a test checks it)."""

_PROBER_BLOCKS: tuple[str, ...] = get_args(ProberName)


class Module(Strict):
    """One entry under `modules:`: which prober, its timeout, that prober's block, and the
    probe policies (policies.py)."""

    prober: ProberName
    timeout: Duration = 0.0
    tcp: TcpModule | None = None
    icmp: IcmpModule | None = None
    email: EmailModule | None = None
    # Probe policies (policies.py); declared after the blocks, which their checks read.
    retries: Retries | None = None
    degraded_response_time: Duration | None = None
    max_response_time: Duration | None = None
    should_fail: bool = False
    assertions: tuple[CheckedAssertion, ...] = ()

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

    @field_validator("retries", "degraded_response_time", "max_response_time", "should_fail")
    @classmethod
    def _policy_fits(cls, value: Any, info: ValidationInfo) -> Any:
        check_policy(info.field_name, value, info.data)
        return value

    @cached_property
    def has_policies(self) -> bool:
        """False for a plain module, which runs its prober once exactly as without policies."""
        return bool(
            self.retries is not None
            or self.degraded_response_time is not None
            or self.max_response_time is not None
            or self.should_fail
            or self.assertions
        )

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
