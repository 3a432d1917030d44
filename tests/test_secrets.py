"""Passwords at rest (storage/secrets.py): a password key is an object, not process state,
so two databases' keys in one process never open each other's values."""

from __future__ import annotations

from pathlib import Path

import pytest

from sonde_exporter.storage.secrets import PasswordKey, SecretError

SECRET = "a-Passw0rd-never-shown"


def test_a_key_opens_only_what_it_sealed_once_loaded(tmp_path: Path) -> None:
    mine = PasswordKey(tmp_path / "a.db.key")
    sealed = mine.box().seal(SECRET)  # creates the key file
    assert SECRET not in sealed and mine.open(sealed) == SECRET
    restarted = PasswordKey(tmp_path / "a.db.key")  # as a fresh composition root
    with pytest.raises(SecretError, match="not loaded"):
        restarted.open(sealed)  # opening never reads the file: app.py loads it first
    restarted.load()
    assert restarted.open(sealed) == SECRET
    other = PasswordKey(tmp_path / "b.db.key")
    other.box()
    with pytest.raises(SecretError, match="not loaded") as caught:
        other.open(sealed)  # loaded in this process, but another database's key
    assert SECRET not in str(caught.value)


def test_a_changed_or_foreign_value_is_refused_without_showing_it(tmp_path: Path) -> None:
    key = PasswordKey(None)  # an in-memory database: a key for this object's lifetime
    sealed = key.box().seal(SECRET)
    changed = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    for value, reason in ((changed, "was changed"), (SECRET, "not a sealed value")):
        with pytest.raises(SecretError, match=reason) as caught:
            key.open(value)
        assert SECRET not in str(caught.value)
    assert PasswordKey(None).box().fingerprint != key.box().fingerprint


def test_a_key_file_without_a_key_is_refused_and_logged(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "a.db.key"
    path.write_text("not a key\n")
    key = PasswordKey(path)
    key.load()
    assert "Cannot load the password key" in caplog.text
    with pytest.raises(SecretError, match="does not hold a key"):
        key.box()  # retried when a password is stored
