"""GET /v1/sd: the monitors as Prometheus HTTP service discovery target groups.

Past one machine, Prometheus is the scheduler: each group makes a Prometheus with
`http_sd_configs` scrape this exporter's /probe for one monitor, at the monitor's interval,
with `monitor=ID` so that /probe checks it with the monitor's own settings (module, target,
timeout and, for an API monitor, its policies),
and `hashmod` on `monitor_id` splits the monitors between several Prometheus servers.

The exporter's own address in each group comes from --web.external-url, else from the first
--web.listen-address: never from the request (its Host header and request line are the
client's to write, and would be handed to every Prometheus as a scrape target).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

from ..targets import check_host
from .engine import MonitorEngine
from .plan import CheckPlan

_DEFAULT_PORTS = {"http": 80, "https": 443}
_PATH = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]*)*")
"""A URL path of RFC 3986 characters (no quotes, angle brackets, spaces or non-ASCII)."""


@dataclass(frozen=True)
class ExporterAddress:
    """Where Prometheus reaches this exporter: the `targets` and labels of every /v1/sd group."""

    host: str | None = None
    """None: listening on every address (`:10115`, `0.0.0.0`, `[::]`), so no one address
    names the machine: its hostname, as Prometheus' own default external URL takes."""
    port: int = 0
    """0 (the kernel picked the port): the port of the listening socket that took the
    request, which the kernel, not the client, reports."""
    scheme: str | None = None
    """Only from --web.external-url; otherwise the job's `scheme` decides."""
    path_prefix: str = ""
    """--web.external-url's path: a reverse proxy's prefix, put before /probe."""

    def target(self, local_port: int) -> str:
        host = self.host or socket.gethostname()
        return f"{f'[{host}]' if ':' in host else host}:{self.port or local_port}"

    def labels(self) -> dict[str, str]:
        labels = {"__metrics_path__": f"{self.path_prefix}/probe"}
        if self.scheme is not None:
            labels["__scheme__"] = self.scheme
        return labels


def listen_address(host: str | None, port: int) -> ExporterAddress:
    """The address of a --web.listen-address (host None for `:port`)."""
    wildcard = not host or (_is_ip(host) and ipaddress.ip_address(host).is_unspecified)
    return ExporterAddress(None if wildcard else host, port)


def external_url(text: str) -> ExporterAddress:
    """--web.external-url: an http(s) URL with a host, an optional port (else the scheme's)
    and path; no credentials, query or fragment. ValueError says what is wrong."""
    if not text.isascii() or not text.isprintable() or " " in text:
        raise ValueError("must be printable ASCII, without spaces")  # urlsplit drops tabs
    url = urllib.parse.urlsplit(text)
    if url.scheme not in _DEFAULT_PORTS:
        raise ValueError("expected an http:// or https:// URL")
    if url.username is not None or url.query or url.fragment:
        raise ValueError("must have no user, query or fragment")
    check_host(url.hostname or "")
    port = url.port  # ValueError when not a number up to 65535
    if port == 0:
        raise ValueError("port 0 is not an address Prometheus can reach")
    if not _PATH.fullmatch(url.path):
        raise ValueError(f"path {url.path!r} has characters a URL path cannot")
    host = url.hostname or ""
    return ExporterAddress(
        host, port or _DEFAULT_PORTS[url.scheme], url.scheme, url.path.rstrip("/")
    )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def prometheus_duration(seconds: float) -> str:
    """Whole milliseconds, which every Prometheus version parses ("1500ms")."""
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True)
class Discovery:
    """What every group shares: the exporter's address, and the --timeout-offset in effect,
    added to the monitor's timeout for the scrape's (/probe subtracts it again)."""

    address: ExporterAddress
    timeout_offset: float

    def group(self, plan: CheckPlan, target: str) -> dict[str, Any]:
        record = plan.record
        scrape_timeout = min(plan.timeout + self.timeout_offset, record.interval)
        labels = {
            **self.address.labels(),
            "__param_module": record.module,
            "__param_target": record.target,
            "__param_monitor": record.id,
            "__scrape_interval__": prometheus_duration(record.interval),
            "__scrape_timeout__": prometheus_duration(scrape_timeout),
            **dict(plan.series_labels),
        }
        return {"targets": [target], "labels": labels}

    def groups(self, engine: MonitorEngine, local_port: int) -> list[dict[str, Any]]:
        """One group per checked monitor (active or maintenance), in a stable order;
        `local_port` is the port the request arrived on (used for a listen port of 0)."""
        target = self.address.target(local_port)
        return [
            self.group(plan, target) for _, plan in sorted(engine.plans.items()) if plan.scheduled
        ]
