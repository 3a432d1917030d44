"""HTTP basic auth against bcrypt hashes, safe to face a flood of wrong passwords.

- bcrypt runs in a worker thread behind a small semaphore, and at most MAX_WAITING checks
  queue for it: a flood costs at most CHECKS_AT_ONCE cores and is answered "busy" beyond that,
  while requests whose credentials are cached (every scrape after the first) never wait.
- An unknown user name is checked against a decoy hash at the highest configured cost, so
  the time of a refusal does not tell whether the name exists.
- Successful checks are cached under an HMAC of user name, password and stored hash with a
  key that lives only in this process: the cache can only be hit by presenting the password
  itself, never by presenting the stored hash (CVE-2022-46146 was a cache hit on the hash).
- Passwords over bcrypt's 72 bytes, undecodable headers and hashes bcrypt rejects are plain
  refusals (401), never errors.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import hashlib
import hmac
import logging
import secrets
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt

from ..logs import fields

logger = logging.getLogger("sonde_exporter")

CHECKS_AT_ONCE = 2
MAX_WAITING = 32
CACHE_SIZE = 256
MAX_PASSWORD_BYTES = 72


class Verdict(enum.Enum):
    ALLOWED = "allowed"
    REFUSED = "refused"
    BUSY = "busy"


def parse_basic(header: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) from an `Authorization: Basic ...` header, as Go's BasicAuth reads
    it (scheme in any case, standard base64 with padding, split at the first colon)."""
    if header is None or header[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


class BasicAuth:
    def __init__(self, users: Mapping[str, str]) -> None:
        self._users = {name.encode(): stored.encode() for name, stored in users.items()}
        cost = max(int(stored[4:6]) for stored in self._users.values())
        # Any well-formed hash makes bcrypt do the full work of its cost; no password matches
        # a random salt with an all-zero digest in practice, and a match would not count.
        self._decoy = bcrypt.gensalt(cost, prefix=b"2b") + b"." * 31
        self._key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, None] = OrderedDict()
        self._semaphore = asyncio.Semaphore(CHECKS_AT_ONCE)
        self._waiting = 0
        self._unusable: set[bytes] = set()

    async def check(self, authorization: str | None) -> Verdict:
        credentials = parse_basic(authorization)
        if credentials is None:
            return Verdict.REFUSED
        user, password = credentials
        if len(password) > MAX_PASSWORD_BYTES:  # bcrypt would only look at the first 72
            return Verdict.REFUSED
        stored = self._users.get(user)
        if stored is not None:
            key = self._cache_key(user, password, stored)
            if key in self._cache:
                self._cache.move_to_end(key)
                return Verdict.ALLOWED
        if self._waiting >= MAX_WAITING:
            return Verdict.BUSY
        self._waiting += 1
        try:
            async with self._semaphore:
                matches = await asyncio.to_thread(self._matches, password, stored or self._decoy)
        finally:
            self._waiting -= 1
        if stored is None:
            return Verdict.REFUSED
        if matches is None:
            self._report_unusable(user)
            return Verdict.REFUSED
        if not matches:
            return Verdict.REFUSED
        self._cache[self._cache_key(user, password, stored)] = None
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return Verdict.ALLOWED

    @staticmethod
    def _matches(password: bytes, stored: bytes) -> bool | None:
        """None when bcrypt rejects the stored hash itself."""
        try:
            return bcrypt.checkpw(password, stored)
        except ValueError:
            return None

    def _cache_key(self, user: bytes, password: bytes, stored: bytes) -> bytes:
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in (user, password, stored):  # length-prefixed: no two splits collide
            mac.update(len(part).to_bytes(4, "big") + part)
        return mac.digest()

    def _report_unusable(self, user: bytes) -> None:
        if user not in self._unusable:
            self._unusable.add(user)
            logger.warning(
                "bcrypt refuses the stored hash of a basic_auth_users entry; that user cannot log in",
                extra=fields(user=user.decode(errors="replace")),
            )
