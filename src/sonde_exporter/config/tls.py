"""The `tls_config:` block (prometheus/common's TLS client settings)."""

from __future__ import annotations

import ssl
from functools import cached_property

from pydantic import ValidationInfo, field_validator, model_validator

from ..tls import TLS_VERSIONS
from ..tlscontexts import TlsSettings, client_context
from .errors import field_error
from .fields import Strict, TlsVersion, config_path


class TlsConfig(Strict):
    """prometheus/common's TLS client settings, as data: file paths are stored resolved
    against the config file's directory, so validating them again never depends on the cwd."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str = ""
    insecure_skip_verify: bool = False
    min_version: TlsVersion | None = None
    max_version: TlsVersion | None = None

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _resolved(cls, value: str | None, info: ValidationInfo) -> str | None:
        return config_path(value, info)

    @model_validator(mode="after")
    def _consistent(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be set together")
        low, high = self.min_version, self.max_version
        if low and high and TLS_VERSIONS[low] > TLS_VERSIONS[high]:
            raise ValueError("min_version must not be above max_version")
        return self

    @cached_property
    def context(self) -> ssl.SSLContext:
        """The shared client context for these settings, looked up on first use and then
        kept: probes never build or look one up. ValueError names an unusable file."""
        return client_context(
            TlsSettings(
                self.ca_file,
                self.cert_file,
                self.key_file,
                self.insecure_skip_verify,
                self.min_version,
                self.max_version,
            )
        )

    def require_context(self) -> None:
        """For the validator of a block that will use TLS: build the context now, so that an
        unusable file is a config error at load naming `tls_config` and its line."""
        try:
            _ = self.context
        except ValueError as exc:
            raise field_error("tls_config", str(exc)) from None
