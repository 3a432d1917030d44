"""Reading a web config file into a validated WebConfig, errors naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from ..config.errors import ConfigError, describe, key_lines
from .model import WebConfig


def load_web_config(path: str | Path | None) -> WebConfig | None:
    """None without a file (no --web.config.file); ConfigError when it cannot be used."""
    if path is None:
        return None
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read web config file: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(
            f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}"
        ) from None
    try:
        lines = {tuple(map(str, p)): line for p, line in key_lines(root, ())}
    except ConfigError as exc:
        raise ConfigError(f"{path}:{exc}") from None
    try:
        config = WebConfig.model_validate(data or {}, context={"directory": path.parent})
    except ValidationError as exc:
        raise ConfigError("\n".join(describe(e, str(path), lines) for e in exc.errors())) from None
    config._file = path
    return config
