"""GET /probe: check the request, run one probe under its deadline, answer with its metrics.

A request that is wrong gets 400 with a one-line reason; a probe that fails gets 200 with
`probe_success 0`, so Prometheus keeps the metrics that explain the failure.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import unquote

from aiohttp import web
from prometheus_client import Counter, Histogram

from .config import Module, dump_yaml
from .exporter import EXPORTER, Exporter
from .history import ProbeResult
from .ipfilter import TargetForbidden
from .probe_metrics import ProbeMetrics
from .prober_base import ProbeContext, ProbeLog, TargetError
from .probers import accept_target, get_prober
from .probing import execute
from .selfmetrics import SelfMetrics
from .targets import MAX_TARGET_LENGTH, check_host

TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
DEFAULT_SCRAPE_TIMEOUT = 120.0
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DEBUG_DISABLED = "debug output is turned off on this exporter (--no-web.enable-debug)\n"

logger = logging.getLogger("sonde_exporter.handler")


class BadRequest(Exception):
    """Answered as 400 with this one-line text."""


def probe_timeout(module_timeout: float, header: str | None, offset: float) -> float:
    """blackbox_exporter's rule: the module timeout, capped by the scrape timeout minus offset."""
    scrape = DEFAULT_SCRAPE_TIMEOUT
    if header is not None and header.strip():
        try:
            scrape = float(header)
        except ValueError:
            raise BadRequest(
                f"{TIMEOUT_HEADER} header: not a number: {one_line(header)!r}"
            ) from None
        if not math.isfinite(scrape) or scrape < 0:
            raise BadRequest(f"{TIMEOUT_HEADER} header: must be a non-negative number of seconds")
        if scrape == 0:
            scrape = DEFAULT_SCRAPE_TIMEOUT
    max_timeout = scrape - offset
    if module_timeout > 0 and (module_timeout < max_timeout or max_timeout <= 0):
        return module_timeout
    if max_timeout <= 0:  # blackbox would run a probe that times out at once
        raise BadRequest(
            f"{TIMEOUT_HEADER} header: scrape timeout {scrape:g}s minus --timeout-offset "
            f"{offset:g}s leaves no time to probe"
        )
    return max_timeout


def unescape_once_more(target: str) -> str:
    """As blackbox_exporter: a target that is still percent-encoded is decoded once more.

    Only %XX escapes are decoded ('+' stays, as in user+tag@example.org); a target whose
    escapes are not valid UTF-8 is kept as it is.
    """
    if "%" not in target:
        return target
    try:
        return unquote(target, errors="strict")
    except UnicodeDecodeError:
        return target


def one_line(text: str, limit: int = 120) -> str:
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


async def handle_probe(request: web.Request) -> web.Response:
    exporter = request.app[EXPORTER]
    try:
        return await _probe(exporter, request)
    except BadRequest as exc:
        return web.Response(status=400, text=f"{exc}\n")
    except TargetForbidden as exc:  # the module's ip_filter; nothing was sent to the target
        return web.Response(status=403, text=f"target parameter: {one_line(exc.message, 300)}\n")


def _module(exporter: Exporter, query: Mapping[str, str]) -> tuple[str, Module]:
    name = query.get("module", "")
    if not name:
        raise BadRequest("module parameter: missing")
    module = exporter.config.modules.get(name)
    if module is None:
        exporter.metrics.module_unknown.inc()
        raise BadRequest(f'module parameter: unknown module "{one_line(name)}"')
    if not module.supported:
        raise BadRequest(
            f'module parameter: module "{name}" uses the {module.prober} prober, '
            "which only blackbox_exporter has"
        )
    return name, module


def _target(prober: str, target: str) -> object:
    try:
        return accept_target(prober, target)
    except TargetError as exc:
        raise BadRequest(f"target parameter: {one_line(str(exc), 300)}") from None


def _hostname(query: Mapping[str, str]) -> str | None:
    hostname = query.get("hostname") or None
    if hostname is None:
        return None
    if len(hostname) > MAX_TARGET_LENGTH:
        raise BadRequest(f"hostname parameter: longer than {MAX_TARGET_LENGTH} characters")
    try:
        check_host(hostname)
    except TargetError as exc:
        raise BadRequest(f"hostname parameter: {one_line(str(exc), 300)}") from None
    return hostname


def _debug(exporter: Exporter, query: Mapping[str, str]) -> bool:
    value = query.get("debug", "false")
    if value.lower() not in ("true", "false"):
        raise BadRequest(f"debug parameter: expected true or false, not {one_line(value)!r}")
    if value.lower() == "true" and not exporter.enable_debug:
        raise web.HTTPForbidden(text=DEBUG_DISABLED)
    return value.lower() == "true"


class Probed(NamedTuple):
    """What a /probe request probes: by module and target, or as a scheduled monitor."""

    name: str
    module: Module
    target: str
    parsed: object
    timeout: float
    monitor: bool
    """As a monitor checks: its result's observations are gathered (execute's `observe`)."""


def _by_module(exporter: Exporter, query: Mapping[str, str]) -> Probed:
    name, module = _module(exporter, query)
    target = unescape_once_more(query.get("target", ""))
    parsed = _target(module.prober, target)
    return Probed(name, module, target, parsed, module.timeout, False)


def _monitor(exporter: Exporter, query: Mapping[str, str], monitor_id: str) -> Probed:
    """?monitor=ID (what /v1/sd sends): probe exactly as that scheduled monitor checks, with
    its own settings, which a module name alone cannot carry (an API monitor's policies)."""
    plan = exporter.monitors.plans.get(monitor_id)
    if plan is None:
        raise BadRequest(f"monitor parameter: no monitor {one_line(monitor_id)!r}")
    record = plan.record
    for key, expected in (("module", record.module), ("target", record.target)):
        given = query.get(key)
        if given is not None and unescape_once_more(given) != expected:
            raise BadRequest(
                f"{key} parameter: monitor {monitor_id} probes {key} {expected!r}, "
                f"not {one_line(given)!r}"
            )
    return Probed(record.module, plan.module, record.target, plan.parsed, plan.timeout, True)


async def _probe(exporter: Exporter, request: web.Request) -> web.Response:
    query = request.query
    monitor_id = query.get("monitor")
    if monitor_id is None:
        probed = _by_module(exporter, query)
    else:
        probed = _monitor(exporter, query, monitor_id)
    timeout = probe_timeout(
        probed.timeout, request.headers.get(TIMEOUT_HEADER), exporter.timeout_offset
    )
    hostname = _hostname(query)
    debug = _debug(exporter, query)

    ctx = ProbeContext(
        metrics=ProbeMetrics(),
        log=ProbeLog(bound=(("module", probed.name), ("target", probed.target))),
        deadline=asyncio.get_running_loop().time() + timeout,
        hostname=hostname,
    )
    result, metrics = await run_probe(exporter, probed, timeout, ctx)
    if debug:
        return web.Response(
            text=debug_output(result, metrics, probed.module), content_type="text/plain"
        )
    # Never gzipped, whatever Accept-Encoding says: a probe's 1-3 KB would save little on the
    # wire and cost CPU on every scrape (Prometheus reads both forms). /metrics is gzipped.
    return web.Response(body=metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE})


async def run_probe(
    exporter: Exporter, probed: Probed, budget: float, ctx: ProbeContext
) -> tuple[ProbeResult, ProbeMetrics]:
    """Run the probe (the scheduler's path: execute) and record its outcome everywhere it
    is shown; TargetForbidden when the module's IP filter refused the target (a 403)."""
    started = time.time()
    name, module, target, parsed, _, monitor = probed  # one unpack: the hot path
    ctx.log.info("Beginning probe", probe=module.prober, timeout_seconds=round(budget, 3))
    exporter.metrics.in_flight.inc()
    try:
        outcome = await execute(
            get_prober(module.prober),
            parsed,
            module,
            ctx,
            budget,
            observe=monitor,
            traceroutes=exporter.traceroutes,
        )
    finally:
        exporter.metrics.in_flight.dec()
    duration, reason = outcome.duration, outcome.reason
    success = reason is None
    if success:
        ctx.log.info("Probe succeeded", duration_seconds=round(duration, 6))
    _probes_counter(exporter.metrics, name, "success" if success else "failure").inc()
    _duration_histogram(exporter.metrics, name).observe(duration)
    result = ProbeResult(
        id=exporter.history.next_id(),
        module=name,
        target=target,
        success=success,
        reason=reason,
        duration=duration,
        started=started,
        log=tuple(ctx.log.lines),
    )
    exporter.history.add(result)
    return result, outcome.metrics


# prometheus_client's labels() takes a lock and builds tuples on every call; a module's
# children never change, so each probe looks them up here instead.
@functools.lru_cache(maxsize=1024)
def _probes_counter(metrics: SelfMetrics, module: str, result: str) -> Counter:
    return metrics.probes.labels(module, result)


@functools.lru_cache(maxsize=1024)
def _duration_histogram(metrics: SelfMetrics, module: str) -> Histogram:
    return metrics.probe_duration.labels(module)


def debug_output(result: ProbeResult, metrics: ProbeMetrics, module: Module) -> str:
    return (
        f"Logs for the probe:\n{result.log_text()}\n"
        f"Metrics that would have been returned:\n{metrics.render()}\n"
        f"Module configuration:\n{dump_yaml(module)}"
    )
