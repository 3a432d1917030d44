"""Loopback listeners for the distinct-monitor bench: one per monitor, on its own 127.x.y.z
address and port. A plain listener accepts and closes; a TLS one completes the handshake with
a certificate for every TLS address (IP SANs, signed by a CA made here), then closes.

    python bench/loopback_targets.py SPEC.json

SPEC holds {"plain": [[address, port], ...], "tls": [...], "ca_file": path}: the CA is
written to ca_file, then "ready" is printed once every listener is bound. Runs in its own
process, so its CPU is not charged to an exporter. Only loopback addresses are accepted.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import resource
import signal
import socket
import ssl
import sys
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def certificates(addresses: list[str], ca_file: Path, scratch: Path) -> ssl.SSLContext:
    """A CA (written to ca_file, for the exporter's tls_config) and a server context whose
    certificate names every address."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("bench CA"))
        .issuer_name(_name("bench CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .sign(ca_key, hashes.SHA256())
    )
    sans = [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("bench target"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain, key_file = scratch / "leaf.pem", scratch / "leaf.key"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key_file)
    return context


class Close(asyncio.Protocol):
    """Close as soon as connected (after the handshake, for TLS)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


def bind(address: str, port: int) -> socket.socket:
    if not ipaddress.ip_address(address).is_loopback:
        sys.exit(f"loopback_targets: refusing non-loopback address {address!r}")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address, port))
    sock.listen(64)
    sock.setblocking(False)
    return sock


async def serve(spec: dict[str, list[list[object]]], ca_file: Path) -> None:
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory() as scratch:
        context = certificates([str(a) for a, _ in spec["tls"]], ca_file, Path(scratch))
        for kind, tls in (("plain", None), ("tls", context)):
            for address, port in spec[kind]:
                sock = bind(str(address), int(str(port)))
                await loop.create_server(Close, sock=sock, ssl=tls)
    print("ready", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(serve(spec, Path(spec["ca_file"])))


if __name__ == "__main__":
    main()
