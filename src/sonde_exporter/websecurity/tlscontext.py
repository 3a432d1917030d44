"""The TLS server side: the SSL context a web config describes, the listener's context that
hands each new connection the one in force, and the client_allowed_sans check."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..tls import TLS_VERSIONS
from .ciphers import CURVES, TLS12_SUITES, openssl_ciphers

if TYPE_CHECKING:
    from .model import TlsServerConfig

_VERIFY = {
    "": ssl.CERT_NONE,
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}


class FieldProblem(ValueError):
    """A setting whose file or value OpenSSL refused; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def build_server_context(tls: TlsServerConfig) -> ssl.SSLContext:
    """Read the certificate, key and client CAs now: a broken file fails the load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    key_field = "key_file" if tls.key_file else "key"
    with (
        _pem_path(tls.cert_file, tls.cert) as cert,
        _pem_path(tls.key_file, tls.key.get_secret_value()) as key,
    ):
        try:
            context.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            raise FieldProblem(key_field, f"certificate and key do not load: {_why(exc)}") from None
        except OSError as exc:
            field = "cert_file" if tls.cert_file and not os.path.exists(cert) else key_field
            raise FieldProblem(field, f"cannot read: {exc.strerror or exc}") from None
    context.verify_mode = _VERIFY[tls.client_auth_type]
    if context.verify_mode != ssl.CERT_NONE:
        _load_client_cas(context, tls)
    ciphers = openssl_ciphers(tls.cipher_suites)
    if ciphers:
        context.set_ciphers(":".join(ciphers))
        offered = {c["name"] for c in context.get_ciphers()}
        missing = [
            g for g in tls.cipher_suites if g in TLS12_SUITES and TLS12_SUITES[g] not in offered
        ]
        if missing:
            raise FieldProblem(
                "cipher_suites", f"{missing[0]} is not available in this system's OpenSSL"
            )
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    if tls.curve_preferences:
        context.set_ecdh_curve(CURVES[tls.curve_preferences[0]])
    return context


def _load_client_cas(context: ssl.SSLContext, tls: TlsServerConfig) -> None:
    """As Go: the given CAs, any of them an anchor; the system's when none is given."""
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    field = "client_ca_file" if tls.client_ca_file else "client_ca"
    try:
        if tls.client_ca_file:
            context.load_verify_locations(cafile=tls.client_ca_file)
        elif tls.client_ca:
            context.load_verify_locations(cadata=tls.client_ca)
        else:
            context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    except ssl.SSLError as exc:
        raise FieldProblem(field, f"no CA certificate loads: {_why(exc)}") from None
    except OSError as exc:
        raise FieldProblem(field, f"cannot read: {exc.strerror or exc}") from None


@contextlib.contextmanager
def _pem_path(path: str, pem: str) -> Iterator[str]:
    """A path OpenSSL can read: the file named, or an inline PEM in an anonymous memory file
    (so an inline key never touches the disk)."""
    if path:
        yield path
        return
    fd = os.memfd_create("sonde-web-config", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False) as f:
            f.write(pem.encode())
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _why(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc).replace("_", " ").lower()


class SwappableContext(ssl.SSLContext):
    """The listener's context. asyncio's TLS transport calls wrap_bio once per accepted
    connection; this hands the connection to the context in force, so a reloaded web config
    (a rotated certificate, a new CA) applies from the next handshake, without reopening the
    port, while connections already open keep theirs."""

    current: ssl.SSLContext

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return self.current.wrap_bio(incoming, outgoing, server_side, server_hostname, session)


def swappable(context: ssl.SSLContext) -> SwappableContext:
    listener = SwappableContext(ssl.PROTOCOL_TLS_SERVER)
    listener.current = context
    return listener


def has_allowed_san(peercert: dict[str, Any] | None, allowed: frozenset[str]) -> bool:
    """As exporter-toolkit: one DNS, email, IP or URI SAN of the verified client certificate
    equals an entry. IP addresses are compared in Go's spelling (lower case, compressed)."""
    for kind, value in (peercert or {}).get("subjectAltName", ()):
        if kind == "IP Address":
            with contextlib.suppress(ValueError):
                value = str(ipaddress.ip_address(value.strip()))
        elif kind not in ("DNS", "email", "URI"):
            continue
        if value in allowed:
            return True
    return False
