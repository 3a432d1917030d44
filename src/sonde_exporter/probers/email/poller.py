"""One poller per mailbox, shared by every email probe waiting for a mail in it.

POP3 servers lock a mailbox per session, so probes cannot each poll on their own. A probe
registers its token here once SMTP accepted its mail; the first registration starts a
poller task for the mailbox, later ones join it, and the task ends when nobody waits.
Each poll is one whole session (login, list, delete, logout): POP3 commits deletions
only at QUIT, and a short session never holds the lock between polls.

Besides the waited-for mails, a poll cleans up after earlier probes: a mail whose probe
gave up is counted as late (and deleted), and any probe mail older than stale_after is
deleted. Mails without a probe token are never fetched beyond their headers (POP3) or at
all (IMAP), and never deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from ...config import AddressChoice, EmailModule, ReceiveSettings
from ...prober_base import ProbeFailure, ProbeLog, Reason
from .counters import LATE_MAILS, STALE_MAILS
from .headers import MailInfo
from .imap import ImapSession
from .pop3 import Pop3Session
from .session import MailSession, now

_PHASE_REASONS = {
    "connect": Reason.RECEIVE_CONNECT,
    "tls": Reason.RECEIVE_TLS,
    "auth": Reason.RECEIVE_AUTH,
}
_MAX_ABANDONED = 10_000
_MAX_POLLERS = 256
logger = logging.getLogger("sonde_exporter.email")


@dataclass(frozen=True, slots=True)
class Delivery:
    """What a probe learns when its mail has been found (and deleted, if asked)."""

    seen_at: float
    """now() of the listing that first contained the mail."""
    phases: dict[str, float]
    """Durations of that session: connect, tls, auth, retrieve, delete."""
    auth: tuple[tuple[str, str], ...]


@dataclass(eq=False, slots=True)
class Waiter:
    token: str
    delete: bool
    deadline: float
    """Loop time at which the probe gives up; bounds the sessions run on its behalf."""
    log: ProbeLog
    future: asyncio.Future[Delivery]
    sessions_before: int
    """Sessions the poller completed before this waiter came."""
    seen_at: float | None = None


@dataclass(slots=True)
class _Known:
    info: MailInfo
    seen_at: float


@dataclass(slots=True)
class _Abandoned:
    expires: float
    delete: bool
    seen: bool
    """Seen before the probe gave up (so not late when found again)."""


_ABANDONED: OrderedDict[str, _Abandoned] = OrderedDict()
"""Tokens of this process' probes that gave up before their mail was found."""
_POLLERS: dict[tuple[object, ...], Poller] = {}


def poller_for(module: EmailModule) -> Poller:
    """The poller of a module's mailbox; modules with equal receive blocks, stale_after and
    address choice share one."""
    key = (
        *module.receive.poller_key,
        module.stale_after,
        module.preferred_ip_protocol,
        module.ip_protocol_fallback,
        module.source_ip_address,
    )
    poller = _POLLERS.get(key)
    if poller is None:
        if len(_POLLERS) >= _MAX_POLLERS:
            for old_key, old in list(_POLLERS.items()):
                if not old.busy:
                    del _POLLERS[old_key]
        poller = _POLLERS[key] = Poller(module.receive, module.stale_after, module)
    return poller


def _abandon(token: str, delete: bool, seen: bool, keep: float) -> None:
    clock = time.monotonic()
    while _ABANDONED and (
        len(_ABANDONED) >= _MAX_ABANDONED or next(iter(_ABANDONED.values())).expires < clock
    ):
        _ABANDONED.popitem(last=False)
    _ABANDONED[token] = _Abandoned(clock + keep, delete, seen)


class Poller:
    """Polls one mailbox while any probe waits for a mail in it."""

    def __init__(
        self, settings: ReceiveSettings, stale_after: float, address: AddressChoice
    ) -> None:
        self.settings = settings
        self.stale_after = stale_after
        self.address = address
        self.waiters: dict[str, Waiter] = {}
        self.known: dict[str, _Known] = {}
        """Mails listed by the last poll, by POP3 UIDL or IMAP uidvalidity:uid."""
        self.task: asyncio.Task[None] | None = None
        self.wake = asyncio.Event()
        self.generation = 0
        """Bumped by every registration: a poll that started earlier may have missed a mail."""
        self.phase = ""
        self.sessions = 0
        """Sessions that completed (listed the mailbox and logged out) so far."""

    @property
    def busy(self) -> bool:
        return self.task is not None and not self.task.done()

    def add(self, token: str, delete: bool, deadline: float, log: ProbeLog) -> Waiter:
        """Start waiting for `token` (call right after SMTP accepted the mail)."""
        loop = asyncio.get_running_loop()
        waiter = Waiter(token, delete, deadline, log, loop.create_future(), self.sessions)
        self.waiters[token] = waiter
        self.generation += 1
        for known in self.known.values():  # a poll for another probe may have seen it already
            if known.info.token == token:
                waiter.seen_at = known.seen_at
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.wake = asyncio.Event()
            self.task = loop.create_task(self._run(), name=f"mail poller {self.settings.url}")
        else:
            self.wake.set()
        return waiter

    def remove(self, waiter: Waiter) -> None:
        """Stop waiting; a probe that did not get its mail leaves its token as abandoned."""
        if self.waiters.get(waiter.token) is waiter:
            del self.waiters[waiter.token]
        future = waiter.future
        if not future.done():
            future.cancel()
        if future.cancelled() or future.exception() is not None:
            _abandon(
                waiter.token, waiter.delete, waiter.seen_at is not None, self.stale_after or 3600
            )
        if not self._pending() and self.task is not None and not self.task.done():
            self.task.cancel()  # nobody waits: stop polling (POP3 then commits nothing)

    def timeout_reason(self, waiter: Waiter) -> Reason:
        """Why a probe ran out of time: no mail in polls that worked, or a receive step hung.

        A completed session proves the mailbox answers; only when none completed since the
        probe came is the step that is still running to blame (receive_connect, ...).
        """
        if waiter.seen_at is not None:
            return Reason.RECEIVE_ERROR  # found, but the deletion did not finish
        if self.sessions > waiter.sessions_before or not self.phase:
            return Reason.NOT_DELIVERED
        return _PHASE_REASONS.get(self.phase, Reason.RECEIVE_ERROR)

    def _pending(self) -> list[Waiter]:
        return [w for w in self.waiters.values() if not w.future.done()]

    async def _run(self) -> None:
        try:
            while pending := self._pending():
                self.wake.clear()
                generation = self.generation
                try:
                    async with asyncio.timeout_at(max(w.deadline for w in pending)):
                        await self._session()
                except ProbeFailure as failure:
                    self._fail(failure.reason, failure.message)
                except TimeoutError:
                    self._fail(
                        _PHASE_REASONS.get(self.phase, Reason.RECEIVE_ERROR),
                        f"mailbox session timed out during {self.phase or 'retrieve'}",
                    )
                except Exception as exc:  # a bug here must fail the probes, not hang them
                    logger.exception("Mail poller failed")
                    self._fail(Reason.INTERNAL, f"internal error: {type(exc).__name__}")
                finally:
                    self.phase = ""
                if self._pending() and self.generation == generation:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.settings.poll_interval):
                            await self.wake.wait()
        finally:
            self.phase = ""

    def _fail(self, reason: Reason, message: str) -> None:
        for waiter in self._pending():
            waiter.future.set_exception(ProbeFailure(reason, message))

    @contextlib.contextmanager
    def _phase(self, name: str, phases: dict[str, float]) -> Iterator[None]:
        self.phase = name
        start = now()
        try:
            yield
        finally:
            phases[name] = now() - start

    async def _session(self) -> None:
        session = _new_session(self.settings, self.address)
        phases: dict[str, float] = {}
        try:
            with self._phase("connect", phases):
                await session.connect()
            if session.tls:
                with self._phase("tls", phases):
                    if not await session.start_tls():
                        del phases["tls"]
            with self._phase("auth", phases):
                await session.login()
            with self._phase("retrieve", phases):
                mails = await session.listing({k: v.info for k, v in self.known.items()})
            plan = self._plan(mails, session.listed_at)
            if plan.delete:
                with self._phase("delete", phases):
                    await session.delete(plan.delete)
                    await session.finish()
            else:
                self.phase = "finish"
                await session.finish()
        finally:
            session.abort()
        self._commit(plan, phases, len(mails))

    def _plan(self, mails: dict[str, MailInfo], listed_at: float) -> _Plan:
        """Match listed mails to waiters; choose what to delete. Nothing is changed yet."""
        self.known = {
            key: _Known(info, self.known[key].seen_at if key in self.known else listed_at)
            for key, info in mails.items()
        }
        plan = _Plan()
        wall = time.time()
        for key, info in mails.items():
            token = info.token
            if token is None:
                continue
            plan.probe_mails += 1
            waiter = self.waiters.get(token)
            if waiter is not None and not waiter.future.done():
                if waiter.seen_at is None:
                    waiter.seen_at = self.known[key].seen_at
                plan.matched.append((waiter, info))
                if waiter.delete:
                    plan.delete.append(key)
                continue
            abandoned = _ABANDONED.get(token)
            if abandoned is not None:
                plan.late.append((token, abandoned))
                if abandoned.delete:
                    plan.delete.append(key)
            elif (
                self.stale_after > 0
                and info.sent is not None
                and wall - info.sent > self.stale_after
            ):
                plan.stale += 1
                plan.delete.append(key)
        return plan

    def _commit(self, plan: _Plan, phases: dict[str, float], listed: int) -> None:
        """The session ended cleanly: deletions are final; tell the waiters and count."""
        self.sessions += 1
        for key in plan.delete:
            self.known.pop(key, None)
        for token, abandoned in plan.late:
            _ABANDONED.pop(token, None)
            if not abandoned.seen:
                LATE_MAILS.inc()
        STALE_MAILS.inc(plan.stale)
        for waiter in self._pending():
            waiter.log.debug(
                "Polled mailbox",
                mails=listed,
                probe_mails=plan.probe_mails,
                deleted=len(plan.delete),
                late=len(plan.late),
                stale=plan.stale,
            )
        for waiter, info in plan.matched:
            if waiter.seen_at is not None and not waiter.future.done():
                waiter.future.set_result(Delivery(waiter.seen_at, dict(phases), info.auth))


@dataclass(slots=True)
class _Plan:
    matched: list[tuple[Waiter, MailInfo]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    late: list[tuple[str, _Abandoned]] = field(default_factory=list)
    stale: int = 0
    probe_mails: int = 0


def _new_session(settings: ReceiveSettings, address: AddressChoice) -> MailSession:
    if settings.parsed_url.scheme.startswith("pop3"):
        return Pop3Session(settings, address)
    return ImapSession(settings, address)
