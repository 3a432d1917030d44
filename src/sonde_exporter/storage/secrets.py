"""Passwords at rest: sealed with a key kept in a file next to the database, never in it.

A database file (or a dump of it) alone does not reveal a sealed password: the key lives in
`<database>.key` (mode 0600, created on first use). The key is a PasswordKey object that the
composition root (app.py) loads and hands to what seals (the API) and what opens (the
engine's plans): nothing process-wide, so two exporters in one process keep their keys apart.
Sealed values name their key by a short fingerprint. Fernet is AES-128-CBC with an
HMAC-SHA256: a changed or foreign value is refused, never decrypted into garbage.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..logs import fields

if TYPE_CHECKING:  # imported when first used: an exporter without email monitors never loads it
    from cryptography.fernet import Fernet

logger = logging.getLogger("sonde_exporter.api")

_PREFIX = "sealed:v1:"


class SecretError(Exception):
    """A value that cannot be sealed or opened; the message never contains the secret."""


class SecretBox:
    """Seals and opens with one key."""

    def __init__(self, key: bytes) -> None:
        from cryptography.fernet import Fernet

        self._fernet: Fernet = Fernet(key)
        self.fingerprint = hashlib.sha256(key).hexdigest()[:12]

    def seal(self, secret: str) -> str:
        token = self._fernet.encrypt(secret.encode()).decode()
        return f"{_PREFIX}{self.fingerprint}:{token}"

    def open(self, token: str) -> str:
        """The secret of a token sealed with this key; SecretError when it was changed."""
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(token.encode()).decode()
        except (InvalidToken, UnicodeDecodeError):
            raise SecretError(f"a value sealed with key {self.fingerprint} was changed") from None


class PasswordKey:
    """The database's password key: loaded at start-up (stored email monitors need it for
    their plans) and, when that failed, retried on the next password to store. One per
    composition root; the API seals with it, the engine's plans open with it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        """The key file (the store's key_file); None: a key that lives as long as this
        object (an in-memory database)."""
        self._box: SecretBox | None = None

    def box(self) -> SecretBox:
        """The key to seal with, loaded (or created) now if it is not yet."""
        if self._box is None:
            self._box = load_box(self.path)
        return self._box

    def load(self) -> None:
        """Load an existing key; one is created only when a first password is stored (an
        in-memory database has no stored password to open)."""
        if self.path is None or not self.path.exists():
            return
        try:
            self.box()
        except (OSError, SecretError) as exc:
            logger.error(
                "Cannot load the password key; email monitors cannot run",
                extra=fields(err=str(exc)),
            )

    def open(self, value: str) -> str:
        """The secret a sealed value holds; SecretError when it was sealed with another key
        than the loaded one, or none is loaded, or it was changed. Never reads a file: plans
        are built on the event loop."""
        if not value.startswith(_PREFIX):
            raise SecretError("not a sealed value")
        fingerprint, _, token = value.removeprefix(_PREFIX).partition(":")
        if self._box is None or self._box.fingerprint != fingerprint:
            raise SecretError(
                f"sealed with key {fingerprint}, which is not loaded (the key file next to the "
                "database is missing or another one)"
            )
        return self._box.open(token)


def key_path(database_path: str) -> Path | None:
    """Where the key of a database file lives; None for an in-memory database."""
    return None if database_path == ":memory:" else Path(database_path + ".key")


def load_box(path: Path | None) -> SecretBox:
    """The key in the file `path` (a store's key_file), created (mode 0600, never
    overwritten) when it has none yet; None (an in-memory store) gets a key that lives as long
    as the process. OSError or SecretError when the file cannot be read or created, or holds
    no key."""
    from cryptography.fernet import Fernet

    if path is None:
        return SecretBox(Fernet.generate_key())
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes().strip()
    else:
        key = Fernet.generate_key()
        with os.fdopen(fd, "wb") as file:
            file.write(key + b"\n")
            file.flush()
            os.fsync(file.fileno())
    try:
        return SecretBox(key)
    except ValueError:
        raise SecretError(f"{path} does not hold a key (44 characters of urlsafe base64)") from None
