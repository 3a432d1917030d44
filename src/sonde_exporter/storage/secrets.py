"""Passwords at rest: sealed with a key kept in a file next to the database, never in it.

A database file (or a dump of it) alone does not reveal a sealed password: the key lives in
`<database>.key` (mode 0600, created on first use). Sealed values name their key by a short
fingerprint, and keys are registered process-wide by fingerprint, so a plan can open a value
with only the value in hand. Fernet is AES-128-CBC with an HMAC-SHA256: a changed or
foreign value is refused, never decrypted into garbage.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when first used: an exporter without email monitors never loads it
    from cryptography.fernet import Fernet

_PREFIX = "sealed:v1:"
_KEYRING: dict[str, Fernet] = {}
"""Fingerprint -> key, for every key this process has loaded."""


class SecretError(Exception):
    """A value that cannot be sealed or opened; the message never contains the secret."""


class SecretBox:
    """Seals with one key; opens with any key this process loaded."""

    def __init__(self, key: bytes) -> None:
        from cryptography.fernet import Fernet

        self._fernet = Fernet(key)
        self.fingerprint = hashlib.sha256(key).hexdigest()[:12]
        _KEYRING[self.fingerprint] = self._fernet

    def seal(self, secret: str) -> str:
        token = self._fernet.encrypt(secret.encode()).decode()
        return f"{_PREFIX}{self.fingerprint}:{token}"


def open_sealed(value: str) -> str:
    """The secret a sealed value holds; SecretError when its key is not loaded or it was
    changed."""
    if not value.startswith(_PREFIX):
        raise SecretError("not a sealed value")
    fingerprint, _, token = value.removeprefix(_PREFIX).partition(":")
    fernet = _KEYRING.get(fingerprint)
    if fernet is None:
        raise SecretError(
            f"sealed with key {fingerprint}, which is not loaded (the key file next to the "
            "database is missing or another one)"
        )
    from cryptography.fernet import InvalidToken

    try:
        return fernet.decrypt(token.encode()).decode()
    except (InvalidToken, UnicodeDecodeError):
        raise SecretError(f"a value sealed with key {fingerprint} was changed") from None


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
