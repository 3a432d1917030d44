"""The `tcp:` block: the dialogue (query_response), TLS, and the labels of probe_expect_info."""

from __future__ import annotations

import re
from functools import cached_property

from pydantic import Field, field_validator, model_validator

from .address import AddressChoice
from .errors import field_error
from .fields import Regex, Strict, latin1
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
            raise field_error(
                "expect_bytes", "expect and expect_bytes cannot be used in the same step"
            )
        if self.expect_bytes == "":
            raise field_error("expect_bytes", "must not be empty")
        names = [label.name for label in self.labels]
        if len(set(names)) != len(names):
            raise field_error("labels", "a label name may appear only once")
        for field in ("send", "expect_bytes"):
            try:  # the bytes on the wire, encoded once, here (cached by the properties below)
                _ = self.send_raw if field == "send" else self.expect_bytes_raw
            except ValueError as exc:
                raise field_error(field, str(exc)) from None
        return self

    @cached_property
    def expect_bytes_raw(self) -> bytes | None:
        return None if self.expect_bytes is None else latin1(self.expect_bytes)

    @cached_property
    def send_raw(self) -> bytes | None:
        return None if self.send is None else latin1(self.send)


class TcpModule(AddressChoice):
    query_response: tuple[QueryStep, ...] = ()
    tls: bool = False
    tls_config: TlsConfig = Field(default_factory=dict, validate_default=True)

    @model_validator(mode="after")
    def _one_expect_info(self) -> TcpModule:
        label_sets = {tuple(label.name for label in s.labels) for s in self.query_response}
        if len(label_sets - {()}) > 1:
            raise field_error(
                "query_response",
                "steps with labels must all use the same label names "
                "(they are series of one metric, probe_expect_info)",
            )
        if self.uses_tls:
            self.tls_config.require_context()
        return self

    @cached_property
    def uses_tls(self) -> bool:
        """Whether its probes need a TLS context: tls, or a starttls step."""
        return self.tls or any(step.starttls for step in self.query_response)
