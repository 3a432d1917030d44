"""TLS client contexts (built once per config load) and the certificate metrics of a probe."""

from __future__ import annotations

import hashlib
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .probe_metrics import ProbeGauge, ProbeMetrics

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

SSL_EARLIEST_CERT_EXPIRY = ProbeGauge(
    "probe_ssl_earliest_cert_expiry",
    "Returns last SSL chain expiry in unixtime of the earliest certificate the peer sent",
)
SSL_LAST_CHAIN_EXPIRY = ProbeGauge(
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "Returns last SSL chain expiry in timestamp of the verified chain",
)
SSL_LAST_CHAIN_INFO = ProbeGauge(
    "probe_ssl_last_chain_info",
    "Contains SSL leaf certificate information",
    ("fingerprint_sha256", "subject", "issuer", "subjectalternative", "serialnumber"),
)
TLS_VERSION_INFO = ProbeGauge(
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
    """A client context; ValueError names the field whose file or value is unusable.

    As in Go's prometheus/common, a ca_file replaces the system's CAs instead of adding to them.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies chain and hostname
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # Go: any trusted cert anchors a chain
    if ca_file is None:
        context.load_default_certs()
    else:
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
    """Set blackbox_exporter's TLS metrics from a completed handshake, with Go's label text."""
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
    if not sent:
        return
    metrics.set(SSL_EARLIEST_CERT_EXPIRY, min(_not_after(c) for c in sent))
    if verified and ssl_object.context.verify_mode != ssl.CERT_NONE:
        metrics.set(SSL_LAST_CHAIN_EXPIRY, min(_not_after(c) for c in verified))
    leaf = sent[0]
    serial = abs(leaf.serial_number)
    metrics.set(
        SSL_LAST_CHAIN_INFO,
        1,
        hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(),
        go_name(leaf.subject),
        go_name(leaf.issuer),
        ",".join(_dns_names(leaf)),
        serial.to_bytes((serial.bit_length() + 7) // 8, "big").hex(),  # Go: %x of the bytes
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


def _dns_names(cert: x509.Certificate) -> list[str]:
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return names.get_values_for_type(x509.DNSName)


# Go's pkix.Name keeps these attributes in named fields and prints them in this order
# (reversed), whatever their order in the certificate; other attributes come last, as hex.
_GO_NAMED = {
    "2.5.4.6": "C",
    "2.5.4.8": "ST",
    "2.5.4.7": "L",
    "2.5.4.9": "STREET",
    "2.5.4.17": "POSTALCODE",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.3": "CN",
    "2.5.4.5": "SERIALNUMBER",
}
_GO_SINGLE = {"CN", "SERIALNUMBER"}
"""Go keeps only the last value of these."""
_ASN1_PRINTABLE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
)


def go_name(name: x509.Name) -> str:
    """A distinguished name as Go's pkix.Name.String() prints it (blackbox's label values)."""
    named: dict[str, list[str]] = {}
    others: list[str] = []
    for rdn in name.rdns:
        for attribute in rdn:
            oid = attribute.oid.dotted_string
            value = attribute.value
            short = _GO_NAMED.get(oid)
            if short is None:
                others.append(f"{oid}=#{_go_der(value).hex()}")
            elif isinstance(value, str):
                named[short] = [value] if short in _GO_SINGLE else [*named.get(short, []), value]
    rdns = others + [
        "+".join(f"{short}={_go_escape(v)}" for v in named[short])
        for short in _GO_NAMED.values()
        if short in named
    ]
    return ",".join(reversed(rdns))


def _go_escape(value: str) -> str:
    out = []
    last = len(value) - 1
    for i, c in enumerate(value):
        if c in ',+"\\<>;' or (c == " " and i in (0, last)) or (c == "#" and i == 0):
            out.append("\\")
        out.append(c)
    return "".join(out)


def _go_der(value: str | bytes) -> bytes:
    """The DER Go's asn1.Marshal gives an attribute value it read back into a Go value."""
    if isinstance(value, bytes):  # a BIT STRING
        tag, body = 0x03, b"\x00" + value
    elif all(c in _ASN1_PRINTABLE for c in value):
        tag, body = 0x13, value.encode()  # PrintableString
    else:
        tag, body = 0x0C, value.encode()  # UTF8String
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body
