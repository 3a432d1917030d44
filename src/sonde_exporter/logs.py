"""Log output in logfmt or JSON, the two formats of Prometheus exporters (--log.format).

Structured fields travel in a log record's `fields` attribute (logger.info(msg, extra=...)).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
}


def fields(**values: Any) -> dict[str, Any]:
    """`logger.info("msg", extra=fields(target=t))`: structured fields for either format."""
    return {"fields": tuple(values.items())}


def timestamp(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at * 1000) % 1000:03d}Z"


def quote(value: str) -> str:
    """A logfmt value: bare when safe, otherwise double-quoted with escapes."""
    if value and value.isprintable() and not any(c in value for c in ' "=\\'):
        return value
    quoted = json.dumps(value, ensure_ascii=False)  # escapes quotes, newlines, C0 controls
    if quoted.isprintable():
        return quoted
    # What JSON leaves raw: DEL, C1 controls (U+0085), format and separator characters
    # (U+202E, U+2028): a viewer may break the line there or show text reordered.
    return "".join(c if c.isprintable() else json.dumps(c)[1:-1] for c in quoted)


def _record_fields(record: logging.LogRecord) -> tuple[tuple[str, Any], ...]:
    return getattr(record, "fields", ())


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [
            f"ts={timestamp(record.created)}",
            f"level={_NAMES.get(record.levelno, record.levelname.lower())}",
            f"logger={record.name}",
            f"msg={quote(record.getMessage())}",
        ]
        parts += [f"{key}={quote(str(value))}" for key, value in _record_fields(record)]
        if record.exc_info:
            parts.append(f"exception={quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": timestamp(record.created),
            "level": _NAMES.get(record.levelno, record.levelname.lower()),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(
            (key, value if isinstance(value, int | float | bool) else str(value))
            for key, value in _record_fields(record)
        )
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out)


def configure(level: str, fmt: str, prober_level: str) -> None:
    """Format every logger's records (aiohttp's and asyncio's too) in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    logging.getLogger("sonde_exporter.probe").setLevel(LEVELS[prober_level])
