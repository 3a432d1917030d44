"""The one place TLS client contexts come from: a small cache that builds one context per
distinct TLS settings, so every module and monitor with those settings shares it.

A context costs about 0.8 MB once the system's CA store is loaded; building one per module
made memory grow with the number of monitors. Besides the settings, the key holds the
identity (mtime_ns, size, inode) of each file a context reads, the system's CA bundle for
one without ca_file: a reload that finds a file replaced gets a fresh context, while
unchanged files keep sharing the old one. Keying on identity rather than clearing the cache
on reload needs no call from the reload path, and lets a module validated meanwhile (an API
monitor's) share with the config's. Only a lookup stats the files; a module keeps the
context it got (config/tls.py), so a probe never looks one up.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections import OrderedDict
from dataclasses import dataclass

from .tls import build_client_context

MAX_CONTEXTS = 64
"""Distinct TLS settings kept; one beyond evicts the least recently used. A module keeps its
own context, so eviction costs a later lookup a rebuild, never a module its context."""

FileIdentity = tuple[int, int, int] | None
"""(mtime_ns, size, inode) of a file; None when it cannot be stat()ed (the build says why)."""


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """What a client context is built from (server_name is not: it is given per connection)."""

    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    insecure_skip_verify: bool
    min_version: str | None
    max_version: str | None


@dataclass(frozen=True, slots=True)
class CacheStats:
    builds: int
    """Contexts built since the start: each one read the CA store and the files."""
    hits: int
    size: int


class _ContextCache:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: OrderedDict[tuple[object, ...], ssl.SSLContext] = OrderedDict()
        self._lock = threading.Lock()  # configs may be validated off the event loop's thread
        self._builds = 0
        self._hits = 0

    def get(self, settings: TlsSettings) -> ssl.SSLContext:
        files = (settings.ca_file or _system_cas(), settings.cert_file, settings.key_file)
        key = (settings, *files, *map(_identity, files))
        with self._lock:
            context = self._entries.get(key)
            if context is not None:
                self._entries.move_to_end(key)
                self._hits += 1
                return context
            context = build_client_context(  # ValueError names the unusable file; not kept
                ca_file=settings.ca_file,
                cert_file=settings.cert_file,
                key_file=settings.key_file,
                insecure_skip_verify=settings.insecure_skip_verify,
                min_version=settings.min_version,
                max_version=settings.max_version,
            )
            self._builds += 1
            self._entries[key] = context
            if len(self._entries) > self._limit:
                self._entries.popitem(last=False)
            return context

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(self._builds, self._hits, len(self._entries))


def _identity(path: str | None) -> FileIdentity:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _system_cas() -> str | None:
    """The CA bundle a context without ca_file loads (SSL_CERT_FILE when set): its identity is
    in the key too, so a reload after the system's CAs were updated loads the new ones."""
    return ssl.get_default_verify_paths().cafile


_CACHE = _ContextCache(MAX_CONTEXTS)


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """The shared context for these settings and the files as they are now; ValueError names
    the field whose file or value is unusable."""
    return _CACHE.get(settings)


def cache_stats() -> CacheStats:
    """How many contexts were built and shared (tests and benches read it)."""
    return _CACHE.stats()
