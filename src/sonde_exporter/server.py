"""The exporter's own HTTP routes: /probe, /metrics, /config, /logs, / and the /-/ endpoints
(app.py mounts them beside the monitors', the API's and the status page's)."""

from __future__ import annotations

import html
import time

from aiohttp import web
from prometheus_client import generate_latest

from . import __version__
from .config import ConfigError, dump_yaml
from .exporter import EXPORTER, Exporter
from .handler import CONTENT_TYPE, DEBUG_DISABLED, handle_probe


def add_routes(app: web.Application) -> None:
    """The exporter's own routes; app.py mounts them with the monitors' and the API's."""
    app.router.add_get("/probe", handle_probe)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/config", config)
    app.router.add_get("/logs", logs)
    app.router.add_get("/", index)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    app.router.add_route("*", "/-/reload", reload)


def _exporter(request: web.Request) -> Exporter:
    return request.app[EXPORTER]


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(_exporter(request).metrics.registry)
    response = web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
    response.enable_compression()  # only when the client's Accept-Encoding allows it
    return response


async def healthy(request: web.Request) -> web.Response:
    return web.Response(text="Healthy\n")


async def ready(request: web.Request) -> web.Response:
    return web.Response(text="Ready\n")


async def reload(request: web.Request) -> web.Response:
    if request.method != "POST":
        return web.Response(status=405, text="This endpoint requires a POST request.\n")
    try:
        await _exporter(request).reload()
    except ConfigError as exc:
        return web.Response(status=400, text=f"failed to reload config: {exc}\n")
    return web.Response(text="OK\n")


async def config(request: web.Request) -> web.Response:
    return web.Response(text=dump_yaml(_exporter(request).config), content_type="text/plain")


async def logs(request: web.Request) -> web.Response:
    if not _exporter(request).enable_debug:  # the same probe logs as debug=true
        return web.Response(status=403, text=DEBUG_DISABLED)
    query = request.query
    history = _exporter(request).history
    probe_id, target, module = query.get("id"), query.get("target"), query.get("module")
    if (probe_id is None) == (target is None):
        return web.Response(status=400, text="id or target parameter: give exactly one\n")
    if module is not None and target is None:
        return web.Response(status=400, text="module parameter: only goes with target\n")
    if probe_id is not None:
        if not (probe_id.isascii() and probe_id.isdigit() and len(probe_id) <= 18):
            return web.Response(status=400, text="id parameter: must be a number\n")
        result = history.by_id(int(probe_id))
    else:
        result = history.by_target(target or "", module)
    if result is None:
        return web.Response(status=404, text="probe not found in the history\n")
    return web.Response(text=result.log_text(), content_type="text/plain")


async def index(request: web.Request) -> web.Response:
    exporter = _exporter(request)
    e = html.escape
    modules = "".join(
        f"<li><code>{e(name)}</code> ({e(m.prober)}{'' if m.supported else ', not supported'})</li>"
        for name, m in exporter.config.modules.items()
    )
    rows = "".join(
        "<tr>"
        f"<td>{e(r.module)}</td><td>{e(r.target)}</td>"
        f"<td>{'Success' if r.success else 'Failure: ' + e(str(r.reason))}</td>"
        f"<td>{r.duration * 1000:.2f} ms</td>"
        f"<td>{time.strftime('%H:%M:%S', time.localtime(r.started))}</td>"
        f'<td><a href="logs?id={r.id}">Logs</a></td>'
        "</tr>"
        for r in exporter.history
    )
    # WCAG 2.1 AA (axe-core checks it in tests/test_status_browser.py): a language, and all
    # content in landmarks (header, nav, main).
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>sonde-exporter</title>
<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}</style></head>
<body><header><h1>sonde-exporter {e(__version__)}</h1>
<nav aria-label="Pages"><a href="status">Status page</a> · <a href="metrics">Metrics</a> · \
<a href="config">Configuration</a></nav></header>
<main><h2>Modules</h2><ul>{modules}</ul>
<h2>Recent probes</h2>
<table><thead><tr><th scope="col">Module</th><th scope="col">Target</th><th scope="col">Result</th>\
<th scope="col">Duration</th><th scope="col">Time</th><th scope="col">Debug</th></tr></thead>
<tbody>{rows}</tbody></table></main></body></html>
"""
    return web.Response(text=page, content_type="text/html")
