"""Reading a config file into validated models, and writing models back out as YAML."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError, describe, key_lines
from .modules import Config


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raise ConfigError naming file, line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    return parse_config(text, str(path))


def parse_config(text: str, filename: str) -> Config:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        raise ConfigError(f"{filename}: the file is empty; expected a 'modules:' mapping")
    try:
        lines = {tuple(map(str, path)): line for path, line in key_lines(root, ())}
    except ConfigError as exc:
        raise ConfigError(f"{filename}:{exc}") from None
    try:
        context = {"directory": Path(filename).parent}
        return Config.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError(
            "\n".join(describe(err, filename, lines) for err in exc.errors())
        ) from None


def describe_unsupported(config: Config) -> str:
    """The modules whose prober only blackbox_exporter has: "http_2xx (http), dns (dns)"."""
    return ", ".join(f"{name} ({prober})" for name, prober in config.unsupported.items())


def dump_yaml(model: BaseModel) -> str:
    """A model as YAML, the form of /config and debug output: durations as strings, secrets
    as <secret> (SecretStr not typed as Secret still shows only asterisks)."""
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
