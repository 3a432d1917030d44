"""The web config file, as exporter-toolkit defines it, checked strictly when it is read.

A key Go's toolkit would ignore (TLS settings without a certificate, SANs nobody is asked
for) or a setting Python's ssl cannot enforce is an error naming the field, never a quieter
server than the file promises.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ..config.errors import field_error
from ..config.fields import Duration, Secret, Strict, TlsVersion, config_path, header_safe
from ..tls import TLS_VERSIONS
from .ciphers import CURVES, GO_ONLY_CURVES, openssl_ciphers
from .tlscontext import FieldProblem, build_server_context

CLIENT_AUTH_TYPES = ("NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")
_UNENFORCEABLE = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")

HEADER_VALUES: dict[str, tuple[str, ...]] = {
    "Content-Security-Policy": (),
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
}
"""exporter-toolkit's five settable headers, with the values it allows (empty: any)."""

_BCRYPT = re.compile(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}")
MAX_BCRYPT_COST = 18
"""Cost 18 takes seconds per check; beyond it, one entry would make every login (and the
decoy check of every unknown user name) take minutes."""


def _bcrypt_hash(value: SecretStr) -> SecretStr:
    match = _BCRYPT.fullmatch(value.get_secret_value())
    if match is None:  # the message never repeats the value: it is a secret
        raise ValueError(
            "not a bcrypt hash: expected $2y$, $2b$ or $2a$, a two-digit cost, $ and 53 "
            "characters of ./A-Za-z0-9 (htpasswd -nBC 10 '' | tr -d ':\\n' makes one)"
        )
    cost = int(match[1])
    if not 4 <= cost <= MAX_BCRYPT_COST:
        raise ValueError(f"bcrypt cost {cost}: sonde-exporter accepts 4 to {MAX_BCRYPT_COST}")
    return value


BcryptHash = Annotated[Secret, AfterValidator(_bcrypt_hash)]


class _Model(Strict):
    """Go's YAML decoder leaves a field at its zero value when the file says `key:` (null)."""

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict):  # an unknown key stays, to be refused even when null
            return {k: v for k, v in data.items() if v is not None or k not in cls.model_fields}
        return data


class TlsServerConfig(_Model):
    cert: str = ""
    key: Secret = SecretStr("")
    client_ca: str = ""
    cert_file: str = ""
    key_file: str = ""
    client_auth_type: str = ""
    client_ca_file: str = ""
    client_allowed_sans: tuple[str, ...] | None = None
    min_version: TlsVersion = "TLS12"
    max_version: TlsVersion = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()
    _context: ssl.SSLContext | None = PrivateAttr(default=None)

    @field_validator("cert_file", "key_file", "client_ca_file")
    @classmethod
    def _relative_to_file(cls, value: str, info: ValidationInfo) -> str:
        return (config_path(value, info) or "") if value else value

    @field_validator("client_auth_type")
    @classmethod
    def _enforceable(cls, value: str) -> str:
        if value in _UNENFORCEABLE:
            raise ValueError(
                f"{value} accepts a client certificate without verifying it, which Python's "
                "ssl cannot do; use RequireAndVerifyClientCert (or VerifyClientCertIfGiven)"
            )
        if value and value not in CLIENT_AUTH_TYPES:
            raise ValueError(
                f"{value!r} is not valid; expected one of {', '.join(CLIENT_AUTH_TYPES)}"
            )
        return value

    @field_validator("cipher_suites")
    @classmethod
    def _known_ciphers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        openssl_ciphers(value)
        return value

    @field_validator("curve_preferences")
    @classmethod
    def _enforceable_curves(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in CURVES and name not in GO_ONLY_CURVES:
                raise ValueError(
                    f"unknown curve {name!r}; Go's names are {', '.join([*CURVES, *GO_ONLY_CURVES])}"
                )
        if len(value) > 1 or set(value) & GO_ONLY_CURVES:
            raise ValueError(
                "Python's ssl can restrict the server to one NIST curve only (CurveP256, "
                "CurveP384 or CurveP521); leave curve_preferences out for OpenSSL's defaults"
            )
        return value

    @field_validator("client_allowed_sans")
    @classmethod
    def _not_empty(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value == ():
            raise ValueError("empty list would refuse every client; leave it out to allow any SAN")
        return value

    @property
    def enabled(self) -> bool:
        """As exporter-toolkit: any certificate, key, CA or client auth type turns TLS on."""
        return any(
            (
                self.cert,
                self.key.get_secret_value(),
                self.client_ca,
                self.cert_file,
                self.key_file,
                self.client_ca_file,
                self.client_auth_type,
            )
        )

    @property
    def context(self) -> ssl.SSLContext | None:
        """The server context, built once when the file is read; None when TLS is off."""
        return self._context

    def _set_without_tls(self) -> list[str]:
        return [
            name
            for name in ("client_allowed_sans", "cipher_suites", "curve_preferences")
            if getattr(self, name)
        ] + [name for name in ("min_version", "max_version") if name in self.model_fields_set]

    @model_validator(mode="after")
    def _consistent(self) -> TlsServerConfig:
        if not self.enabled:
            ignored = self._set_without_tls()
            if ignored:
                raise field_error(ignored[0], "TLS is off (no cert_file), so this would do nothing")
            return self
        inline_or_file = (
            ("cert", self.cert, self.cert_file),
            ("key", self.key.get_secret_value(), self.key_file),
            ("client_ca", self.client_ca, self.client_ca_file),
        )
        for name, inline, path in inline_or_file:
            if inline and path:
                raise field_error(name, f"give {name} or {name}_file, not both")
            if name != "client_ca" and not (inline or path):
                raise field_error(f"{name}_file", f"missing one of {name} or {name}_file")
        verifies = self.client_auth_type not in ("", "NoClientCert")
        if (self.client_ca or self.client_ca_file) and not verifies:
            field = "client_ca_file" if self.client_ca_file else "client_ca"
            raise field_error(
                field,
                "a client CA is set, but client_auth_type does not ask for client certificates; "
                "set client_auth_type: RequireAndVerifyClientCert",
            )
        if self.client_allowed_sans and self.client_auth_type != "RequireAndVerifyClientCert":
            raise field_error(
                "client_allowed_sans", "needs client_auth_type: RequireAndVerifyClientCert"
            )
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise field_error(
                "min_version", f"{self.min_version} is above max_version {self.max_version}"
            )
        if (
            self.cipher_suites
            and not openssl_ciphers(self.cipher_suites)
            and self.min_version != "TLS13"
        ):
            raise field_error(
                "cipher_suites",
                "lists only TLS 1.3 suites, which are not configurable (as in Go), so no TLS 1.2 "
                "handshake could succeed; add TLS 1.2 suites or set min_version: TLS13",
            )
        try:
            self._context = build_server_context(self)
        except FieldProblem as exc:
            raise field_error(exc.field, str(exc)) from None
        return self


class HttpServerConfig(_Model):
    http2: bool = True
    """Accepted for compatibility; aiohttp answers HTTP/1.1 only, so it changes nothing."""
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _allowed_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            allowed = HEADER_VALUES.get(name)
            if allowed is None:
                raise field_error(
                    name,
                    f"this header cannot be set; the settable ones are {', '.join(HEADER_VALUES)}",
                )
            if text and allowed and text not in allowed:
                raise field_error(
                    name, f"{text!r} is not valid; expected one of {', '.join(allowed)}"
                )
            try:
                header_safe(text)
            except ValueError as exc:
                raise field_error(name, str(exc)) from None
        return value


class PerClientLimit(Strict):
    """sonde-exporter's own addition: the same token bucket, one per client address."""

    interval: Duration
    burst: int = Field(ge=1)


class RateLimit(_Model):
    interval: Duration = 0.0
    """Time for one token to come back; 0 turns the global limit off."""
    burst: int = Field(default=0, ge=0)
    per_client: PerClientLimit | None = None

    @model_validator(mode="after")
    def _burst_with_interval(self) -> RateLimit:
        if self.interval > 0 and self.burst < 1:
            raise field_error(
                "burst", "must be at least 1 when interval is set (0 refuses every request)"
            )
        if self.per_client is not None and self.per_client.interval == 0:
            raise field_error(
                "per_client", "interval must be above 0 (leave per_client out to turn it off)"
            )
        return self


class WebConfig(_Model):
    tls_server_config: TlsServerConfig = TlsServerConfig()
    http_server_config: HttpServerConfig = HttpServerConfig()
    basic_auth_users: dict[str, BcryptHash] = Field(default_factory=dict)
    rate_limit: RateLimit = RateLimit()
    _file: Path = PrivateAttr(default=Path())

    @property
    def file(self) -> Path:
        return self._file

    def files(self) -> list[Path]:
        """The file itself and the ones it names: a change to any of them is a reload."""
        tls = self.tls_server_config
        return [
            self._file,
            *(Path(f) for f in (tls.cert_file, tls.key_file, tls.client_ca_file) if f),
        ]
