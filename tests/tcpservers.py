"""Loopback servers, certificates and socket accounting for the TCP prober tests."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import select
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class Pki:
    """A private CA (`ca.pem`), certificates it issued, and server contexts that use them."""

    dir: Path
    ca: trustme.CA
    leaf: trustme.LeafCert
    """For localhost, 127.0.0.1 and ::1; expires before the CA does."""

    @classmethod
    def create(cls, directory: Path) -> Pki:
        directory.mkdir(exist_ok=True)
        ca = trustme.CA()
        leaf = ca.issue_cert(
            "localhost",
            "127.0.0.1",
            "::1",
            not_after=datetime.datetime(2031, 5, 6, 7, 8, 9, tzinfo=datetime.UTC),
        )
        ca.cert_pem.write_to_path(directory / "ca.pem")
        return cls(directory, ca, leaf)

    @property
    def ca_file(self) -> str:
        return str(self.dir / "ca.pem")

    def server_context(
        self, cert: trustme.LeafCert | None = None, *, max_version: ssl.TLSVersion | None = None
    ) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (cert or self.leaf).configure_cert(context)
        if max_version is not None:
            context.maximum_version = max_version
        return context

    def client_cert_files(self, name: str) -> tuple[str, str]:
        """A client certificate from this CA, as (cert_file, key_file) paths."""
        cert = self.ca.issue_cert(f"{name}@example.org", common_name=name)
        cert_file, key_file = self.dir / f"{name}.crt", self.dir / f"{name}.key"
        cert.cert_chain_pems[0].write_to_path(cert_file)
        cert.private_key_pem.write_to_path(key_file)
        return str(cert_file), str(key_file)


def odd_leaf(ca: trustme.CA, directory: Path) -> tuple[Path, Path]:
    """A leaf whose subject and SANs exercise Go's pkix.Name.String() rules; (cert, key) files.

    Attributes out of Go's order, repeated OUs, characters that need escaping, an attribute Go
    has no name for (emailAddress), IP and email SANs next to DNS ones, and a serial number
    whose first byte is below 0x10.
    """
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "svc.sonde.test"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, 'Sonde, "Probes" + Co; <x>'),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "ops"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, " #edge "),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "ops@sonde.test"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "Berlin"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, "A-1"),
        ]
    )
    not_after = datetime.datetime(2030, 2, 3, 4, 5, 6, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(0x0ABCDEF012)
        .not_valid_before(datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC))
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("svc.sonde.test"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.RFC822Name("ops@sonde.test"),
                    x509.DNSName("alt.sonde.test"),
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_file, key_file = directory / "odd.crt", directory / "odd.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def leaf_certificate(cert: trustme.LeafCert) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes())


async def hold_open(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept and say nothing; close once the client has gone."""
    try:
        await reader.read()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def sockets_to(port: int) -> set[str]:
    """The inodes of this process's TCP sockets whose peer's port is `port`.

    Those are the client side of connections to a loopback test server: the prober's own
    sockets (and a backlogged listener's fillers), not the servers' accepted ones.
    """
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if link.startswith("socket:["):
            inodes.add(link[len("socket:[") : -1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                    found.add(fields[9])
    return found


async def settled_fds(baseline: int, *, wait: float = 2.0) -> int:
    """The fd count once it is back at `baseline`, or whatever it is after `wait` seconds.

    Closing sockets takes a loop iteration or two (transports close on the next cycle,
    server handlers see EOF), so give them that time before counting.
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + wait
    count = open_fds()
    while count > baseline and loop.time() < end:
        await asyncio.sleep(0.01)
        count = open_fds()
    return count


@contextmanager
def backlogged_listener(host: str = "127.0.0.1") -> Iterator[int]:
    """A listening port that never accepts and whose accept queue is full.

    Linux drops a SYN to a listener whose accept queue is full, so a connect to this port
    hangs (SYN retransmits) instead of being refused. Yields the port.
    """
    with full_listener(host) as listener:
        yield listener.getsockname()[1]


@contextmanager
def full_listener(host: str = "127.0.0.1") -> Iterator[socket.socket]:
    """backlogged_listener's socket itself: accept() on it makes room for one more SYN."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    fillers: list[socket.socket] = []
    try:
        listener.bind((host, 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        for _ in range(16):
            filler = socket.socket(listener.family)
            fillers.append(filler)
            filler.setblocking(False)
            filler.connect_ex((host, port))
            _, writable, _ = select.select([], [filler], [], 0.3)
            if not writable:  # this SYN was dropped: the queue is full
                break
        else:
            raise RuntimeError("could not fill the accept queue of a loopback listener")
        yield listener
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def loopback_v6_available() -> None:
    """Fail (never skip) when the kernel cannot bind ::1; the IPv6 tests need it."""
    assert socket.has_ipv6, "Python was built without IPv6 support"
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))


@contextmanager
def blocking_tls_server(context: ssl.SSLContext, banner: bytes = b"") -> Iterator[int]:
    """A TLS server on a thread, using OpenSSL's blocking socket path; yields its port.

    Unlike an asyncio server, it sends the alert when it rejects a handshake (asyncio drops
    the alert and just closes), as OpenSSL servers such as nginx or Postfix do. After the
    handshake it sends `banner`, reads until the client leaves, then answers its close_notify.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(banner)
                    while tls.recv(4096):
                        pass
                    tls.unwrap()
            except OSError:  # a rejected handshake, or a client that left abruptly
                pass
            finally:
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()


async def answer_ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"OK\r\n")
    await writer.drain()
    await hold_open(reader, writer)
