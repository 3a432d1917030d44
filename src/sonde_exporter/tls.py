"""TLS client contexts (tlscontexts.py shares them), the certificate metrics of a probe, and
the one wording of a failed handshake that every prober uses.

`cryptography` (about 8 MB resident) is imported on the first certificate to parse, so an
exporter that never completes a TLS handshake never loads it.
"""

from __future__ import annotations

import functools
import hashlib
import re
import ssl
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .probe_metrics import ProbeGauge, ProbeMetrics

if TYPE_CHECKING:
    from cryptography import x509

TLS_VERSIONS = {
    # the config's names (as Go's crypto/tls) -> Python's; the web config uses them too
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
        context.minimum_version = TLS_VERSIONS[min_version]
    if max_version is not None:
        context.maximum_version = TLS_VERSIONS[max_version]
    return context


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)


_SSL_NOISE = re.compile(r"^\[[^]]*\] | \(_ssl\.c:\d+\)$")


def describe_tls_error(exc: BaseException) -> str:
    """A failed handshake in one wording for every prober: why verification failed, or
    OpenSSL's own words ("tlsv13 alert certificate required") or the OS error text."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verification failed: {exc.verify_message}"
    return f"TLS handshake failed: {error_text(exc)}"


def error_text(exc: BaseException) -> str:
    """OpenSSL's words for an SSLError without its "[SSL: X]" and "(_ssl.c:N)" noise, the
    OS text for another OSError, else the exception's own text."""
    if isinstance(exc, ssl.SSLError):
        text = _SSL_NOISE.sub("", str(exc.args[-1]) if exc.args else "")
        return text or str(exc.reason or type(exc).__name__)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@functools.cache
def _x509() -> ModuleType:
    """cryptography.x509, imported on first use and then reused."""
    from cryptography import x509

    return x509


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
        sent = [leaf_der] if leaf_der else []
    if not sent:
        return
    lib = _x509()
    certs = [lib.load_der_x509_certificate(der) for der in sent]
    metrics.set(SSL_EARLIEST_CERT_EXPIRY, min(_not_after(c) for c in certs))
    if verified and ssl_object.context.verify_mode != ssl.CERT_NONE:
        metrics.set(
            SSL_LAST_CHAIN_EXPIRY,
            min(_not_after(lib.load_der_x509_certificate(der)) for der in verified),
        )
    leaf = certs[0]
    serial = abs(leaf.serial_number)
    metrics.set(
        SSL_LAST_CHAIN_INFO,
        1,
        hashlib.sha256(sent[0]).hexdigest(),
        go_name(leaf.subject),
        go_name(leaf.issuer),
        ",".join(_dns_names(leaf)),
        serial.to_bytes((serial.bit_length() + 7) // 8, "big").hex(),  # Go: %x of the bytes
    )


def _chain(raw: Any, method: str) -> list[bytes]:
    """The DER of each certificate of a chain; empty when this Python cannot tell."""
    getter = getattr(raw, method, None)
    if getter is None:
        return []
    try:
        certs = getter() or []
    except (ssl.SSLError, ValueError):
        return []
    return [_der(c) for c in certs]


def _der(cert: Any) -> bytes:
    if isinstance(cert, bytes):
        return cert
    der: bytes = cert.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
    return der


def _not_after(cert: x509.Certificate) -> float:
    return cert.not_valid_after_utc.timestamp()


def _dns_names(cert: x509.Certificate) -> list[str]:
    lib = _x509()
    try:
        names: x509.SubjectAlternativeName = cert.extensions.get_extension_for_class(
            lib.SubjectAlternativeName
        ).value
    except lib.ExtensionNotFound:
        return []
    return names.get_values_for_type(lib.DNSName)


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
