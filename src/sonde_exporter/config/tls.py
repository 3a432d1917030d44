"""The `tls_config:` block (prometheus/common's TLS client settings)."""

from __future__ import annotations

import ssl
from typing import Any

from pydantic import PrivateAttr, ValidationInfo, model_validator

from ..tls import build_client_context
from .fields import Strict, TlsVersion, config_path


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
