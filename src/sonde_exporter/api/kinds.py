"""Each monitor kind as the generic CRUD handlers see it: its path, ID prefixes, request
model, target, and what its monitors and results show beyond the shared fields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..kinds import KINDS as KIND_TABLE
from ..kinds import KindSpec
from ..storage import MonitorRecord, ResultRecord, result_id
from .fields import OPTIONAL_FIELDS, MonitorIn
from .models import EmailMonitorIn, IcmpMonitorIn, TcpMonitorIn

UNCHANGED = "unchanged"
"""Stands for a stored write-only value while an update is validated (crud.py keeps the
stored value unless the update sends a new one)."""


def timestamp(seconds: float) -> str:
    """ISO 8601 UTC to the second, as the contract's 2026-02-14T12:00:00Z."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def milliseconds(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


@dataclass(frozen=True)
class Kind:
    spec: KindSpec
    """Its row of the kind table: name (the prober), title, path, ID prefixes, scopes."""
    model: type[MonitorIn]
    fields: tuple[str, ...]
    """The kind's own request fields, kept in the record's spec."""
    write_only: tuple[str, ...]
    target: Callable[[dict[str, Any]], str]
    result_details: Callable[[dict[str, Any]], dict[str, Any]]
    extras: tuple[str, ...] = ()
    """The kind's own optional fields, shown after the shared optional ones."""
    mailbox: str | None = None
    """The field naming a second server its checks connect to (email's mailbox), which the
    IP filter judges like the target."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def path(self) -> str:
        return self.spec.api_path

    @property
    def read_scope(self) -> str:
        return self.spec.read_scope

    @property
    def write_scope(self) -> str:
        return self.spec.write_scope

    def owns(self, record: MonitorRecord | None) -> bool:
        """Whether the API serves this record here (config.yml's monitors are the file's)."""
        return record is not None and record.kind == self.name and record.source == "api"

    def body(self, record: MonitorRecord) -> dict[str, Any]:
        """The record as a create body (write-only fields as stored): what an update sends
        its fields over."""
        return {
            "name": record.name,
            "timeoutMs": milliseconds(record.timeout),
            "intervalSeconds": round(record.interval),
            "status": record.status,
            "module": record.module,
            **record.spec,
            **dict.fromkeys(self.write_only, UNCHANGED),
        }

    def render(self, record: MonitorRecord, last: ResultRecord | None) -> dict[str, Any]:
        """The monitor object: the contract's fields, then this kind's, then the optional ones."""
        spec = record.spec
        out: dict[str, Any] = {"id": record.id, "name": record.name}
        out.update((f, spec.get(f)) for f in self.fields if f not in self.write_only)
        out |= {
            "timeoutMs": milliseconds(record.timeout),
            "intervalSeconds": round(record.interval),
            "isEnabled": record.status != "disabled",
            "lastCheckedAt": None if last is None else timestamp(last.checked_at),
            "lastStatus": None if last is None else last.status,
            "lastResponseTimeMs": None if last is None else milliseconds(last.response_time),
            "createdAt": timestamp(record.created_at),
            "updatedAt": timestamp(record.updated_at),
            "status": record.status,
            "module": record.module,
        }
        out.update((f, spec.get(f)) for f in OPTIONAL_FIELDS)
        out["tags"] = spec.get("tags", [])
        out.update((f, spec.get(f)) for f in self.extras)
        return out

    def render_result(self, result: ResultRecord) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": result_id(self.name, result.seq or 0),
            "status": result.status,
            "responseTimeMs": None if result.status != "up" else milliseconds(result.response_time),
            "checkedAt": timestamp(result.checked_at),
        }
        if result.status != "up":
            out["error"] = result.error or result.reason or result.status
        out |= {"attempts": result.attempts, "degraded": result.degraded, "reason": result.reason}
        out |= self.result_details(result.details)
        return out

    def record(
        self, body: MonitorIn, status: str, now: float, old: MonitorRecord | None, monitor_id: str
    ) -> MonitorRecord:
        spec = body.spec((*self.fields, *self.extras))
        return MonitorRecord(
            id=monitor_id,
            kind=self.name,
            source="api",
            name=body.name,
            module=body.module or self.name,
            target=self.target(spec),
            interval=float(body.intervalSeconds),
            timeout=body.timeoutMs / 1000,
            status=status,
            created_at=now if old is None else old.created_at,
            updated_at=now,
            spec=spec,
        )


def _host_port(spec: dict[str, Any]) -> str:
    host = spec["host"]
    return f"[{host}]:{spec['port']}" if ":" in host else f"{host}:{spec['port']}"


def _icmp_details(details: dict[str, Any]) -> dict[str, Any]:
    return {
        "packetsSent": details.get("packets_sent"),
        "packetsReceived": details.get("packets_received"),
        "packetLoss": details.get("packet_loss"),
        "rttMinMs": _ms_float(details.get("rtt_min")),
        "rttAvgMs": _ms_float(details.get("rtt_avg")),
        "rttMaxMs": _ms_float(details.get("rtt_max")),
    }


def _ms_float(seconds: float | None) -> float | None:
    """RTTs on loopback are microseconds: kept to 0.001 ms rather than rounded to 0."""
    return None if seconds is None else round(seconds * 1000, 3)


def _email_details(details: dict[str, Any]) -> dict[str, Any]:
    return {"deliveryTimeMs": milliseconds(details.get("delivery_time"))}


TCP = Kind(
    KIND_TABLE["tcp"], TcpMonitorIn, ("host", "port"), (), _host_port, lambda _: {}, ("data",)
)
ICMP = Kind(
    KIND_TABLE["icmp"],
    IcmpMonitorIn,
    ("host", "packetSize", "count"),
    (),
    lambda s: s["host"],
    _icmp_details,
)
EMAIL = Kind(
    KIND_TABLE["email"],
    EmailMonitorIn,
    ("smtpUrl", "receiveUrl", "email", "from", "username", "password"),
    ("password",),
    lambda s: s["smtpUrl"],
    _email_details,
    mailbox="receiveUrl",
)
KINDS = (TCP, ICMP, EMAIL)
"""In the kind table's order (a test checks that every kind of the table is here)."""
