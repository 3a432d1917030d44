"""The HTML document around each status page: landmarks, the stylesheet and the script, all
relative links, so the pages work behind a reverse proxy's path prefix too."""

from __future__ import annotations

from html import escape

from .. import __version__
from .text import moment

VERSION_TAG = __version__.replace("+", "-")
"""Appended to the asset URLs, so a new version's browser cache never serves the old ones."""


def page(
    title: str, body: str, *, to_status: str, public: bool, now: float, script: bool = False
) -> str:
    """`to_status` is the relative path from this page to /status/ ("status/" or "")."""
    home_href = "./" if to_status else "../"
    home = "" if public else f'<a class="home" href="{home_href}">sonde-exporter</a>'
    js = (
        f'<script src="{to_status}static/status.js?v={VERSION_TAG}" defer></script>'
        if script
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        '<link rel="icon" href="data:,">'  # no /favicon.ico request
        f"<title>{escape(title)}</title>"
        f'<link rel="stylesheet" href="{to_status}static/status.css?v={VERSION_TAG}">{js}'
        f'</head><body><header class="top">{home}<h1 class="title">{escape(title)}</h1>'
        f'</header><main id="main">{body}</main>'
        f'<footer class="foot">Rendered {moment(now)}. Times are in UTC.</footer></body></html>\n'
    )
