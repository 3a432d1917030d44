"""Monitor IDs and kinds: `tcpm_…` for a TCP monitor, stable for a config monitor's name."""

from __future__ import annotations

import hashlib
import secrets

from ..kinds import KINDS


def config_monitor_id(kind: str, name: str) -> str:
    """The same for the same kind and name, across restarts and reloads: history stays."""
    digest = hashlib.sha256(f"config\0{kind}\0{name}".encode()).hexdigest()
    return f"{KINDS[kind].monitor_prefix}{digest[:16]}"


def new_monitor_id(kind: str) -> str:
    """A random ID for a monitor created through the API (64 bits)."""
    return f"{KINDS[kind].monitor_prefix}{secrets.token_hex(8)}"


def kind_of(monitor_id: str) -> str | None:
    """The kind an ID names (`tcpm_…` is tcp), or None for a malformed ID."""
    prefix, sep, rest = monitor_id.partition("m_")
    if not sep or prefix not in KINDS or not rest.isascii() or not rest.isalnum():
        return None
    return prefix


def phase(monitor_id: str, interval: float) -> float:
    """Where in its interval a monitor runs: spread by ID, as Prometheus spreads scrapes."""
    fraction = int.from_bytes(hashlib.sha256(monitor_id.encode()).digest()[:8]) / 2**64
    return fraction * interval
