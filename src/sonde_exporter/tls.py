"""TLS client contexts (built once per config load) and the certificate metrics of a probe."""

from __future__ import annotations

import hashlib
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .metrics import Gauge, ProbeMetrics

_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's tls.VersionName spelling, which blackbox_exporter puts in probe_tls_version_info.
_VERSION_NAMES = {
    "TLSv1": "TLS 1.0",
    "TLSv1.1": "TLS 1.1",
    "TLSv1.2": "TLS 1.2",
    "TLSv1.3": "TLS 1.3",
}

SSL_EARLIEST_CERT_EXPIRY = Gauge(
    "probe_ssl_earliest_cert_expiry",
    "Returns last SSL chain expiry in unixtime of the earliest certificate the peer sent",
)
SSL_LAST_CHAIN_EXPIRY = Gauge(
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "Returns last SSL chain expiry in timestamp of the verified chain",
)
SSL_LAST_CHAIN_INFO = Gauge(
    "probe_ssl_last_chain_info",
    "Contains SSL leaf certificate information",
    ("fingerprint_sha256", "subject", "issuer", "subjectalternative", "serialnumber"),
)
TLS_VERSION_INFO = Gauge(
    "probe_tls_version_info", "Returns the TLS version used or NaN when unknown", ("version",)
)


def build_client_context(
    *,
    ca_file: str | None,
    cert_file: str | None,
    key_file: str | None,
    insecure_skip_verify: bool,
    min_version: str | None,
    max_version: str | None,
) -> ssl.SSLContext:
    """A client context; ValueError names the field whose file or value is unusable."""
    context = ssl.create_default_context()
    if ca_file is not None:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"ca_file: cannot load {ca_file!r}: {_reason(exc)}") from None
    if cert_file is not None and key_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"cert_file/key_file: cannot load {cert_file!r} with {key_file!r}: {_reason(exc)}"
            ) from None
    if insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        context.minimum_version = _VERSIONS[min_version]
    if max_version is not None:
        context.maximum_version = _VERSIONS[max_version]
    if min_version and max_version and _VERSIONS[min_version] > _VERSIONS[max_version]:
        raise ValueError("min_version must not be above max_version")
    return context


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)


def record_tls_metrics(metrics: ProbeMetrics, ssl_object: Any) -> None:
    """Set blackbox_exporter's TLS metrics from a completed handshake."""
    version = ssl_object.version()
    if version:
        metrics.set(TLS_VERSION_INFO, 1, _VERSION_NAMES.get(version, version))
    # The chains are private API in Python 3.11/3.12 and public from 3.13.
    raw = getattr(ssl_object, "_sslobj", ssl_object)
    sent = _chain(raw, "get_unverified_chain")
    verified = _chain(raw, "get_verified_chain")
    if not sent:
        leaf_der = ssl_object.getpeercert(binary_form=True)
        sent = [x509.load_der_x509_certificate(leaf_der)] if leaf_der else []
    if sent:
        metrics.set(SSL_EARLIEST_CERT_EXPIRY, min(_not_after(c) for c in sent))
    if verified and ssl_object.context.verify_mode != ssl.CERT_NONE:
        metrics.set(SSL_LAST_CHAIN_EXPIRY, min(_not_after(c) for c in verified))
    if sent:
        leaf = sent[0]
        metrics.set(
            SSL_LAST_CHAIN_INFO,
            1,
            hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(),
            leaf.subject.rfc4514_string(),
            leaf.issuer.rfc4514_string(),
            _alt_names(leaf),
            format(leaf.serial_number, "x"),
        )


def _chain(raw: Any, method: str) -> list[x509.Certificate]:
    getter = getattr(raw, method, None)
    if getter is None:
        return []
    try:
        certs = getter() or []
    except (ssl.SSLError, ValueError):
        return []
    return [x509.load_der_x509_certificate(_der(c)) for c in certs]


def _der(cert: Any) -> bytes:
    if isinstance(cert, bytes):
        return cert
    der: bytes = cert.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
    return der


def _not_after(cert: x509.Certificate) -> float:
    return cert.not_valid_after_utc.timestamp()


def _alt_names(cert: x509.Certificate) -> str:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ""
    return ",".join(str(name.value) for name in names)
