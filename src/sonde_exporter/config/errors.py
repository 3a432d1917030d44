"""Config errors: YAML and validation problems turned into `file:line: field: message` lines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from pydantic import ValidationInfo
from pydantic_core import ErrorDetails, PydanticCustomError

_FIELD_ERROR = "field_error"


class ConfigError(Exception):
    """A config file that cannot be used; the message has one line per problem."""


def field_error(field: str, message: str) -> PydanticCustomError:
    """For a model validator to raise when the fault lies in one of its fields: the error then
    names that field and its line (the `starttls:` line, not its parent `receive:`). A dotted
    `field` ("monitors.2.target") names a field further down."""
    return PydanticCustomError(_FIELD_ERROR, "{message}", {"field": field, "message": message})


FIELD_NAMES = "field_names"
"""Validation context key: config name -> the name its reader knows the field by (the API's
camelCase names), so a message that names another field names it as the reader wrote it."""


def spelled(info: ValidationInfo, name: str) -> str:
    """`name` (a config field, "icmp.count") as the reader of the message knows it."""
    names: dict[str, str] = (info.context or {}).get(FIELD_NAMES, {})
    return names.get(name, name)


def error_parts(err: ErrorDetails) -> tuple[tuple[int | str, ...], str]:
    """The one reading of a pydantic error, for config files, the API and nested checks:
    its location (a field_error's field included, list indexes as numbers) and its message
    without pydantic's prefix. Never the input: a password may be in it."""
    loc = tuple(err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == _FIELD_ERROR:
        parts = str(err.get("ctx", {})["field"]).split(".")
        loc = (*loc, *(int(p) if p.isdigit() else p for p in parts))
    elif err["type"] == "extra_forbidden":
        message = "unknown field"
    return loc, message


def key_lines(
    node: yaml.Node | None, path: tuple[Any, ...]
) -> Iterator[tuple[tuple[Any, ...], int]]:
    """Yield (path, line) for every mapping key and sequence item; reject duplicate keys."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise ConfigError(
                    f"{key_node.start_mark.line + 1}: {field_path((*path, key))}: defined twice"
                )
            seen.add(key)
            yield (*path, key), key_node.start_mark.line + 1
            yield from key_lines(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield (*path, index), item.start_mark.line + 1
            yield from key_lines(item, (*path, index))


def field_path(loc: tuple[Any, ...], top: str = "(top level)") -> str:
    """modules.smtp.tcp.query_response[2].expect; each name cut to 64 characters (an unknown
    key is the input's)."""
    out = "".join(f"[{p}]" if isinstance(p, int) else f".{str(p)[:64]}" for p in loc)
    return out.lstrip(".") or top


def describe(err: ErrorDetails, filename: str, lines: dict[tuple[str, ...], int]) -> str:
    full_loc, message = error_parts(err)
    kind = err["type"]
    loc = tuple(str(p) for p in full_loc)
    if loc and loc[-1] == "[key]":  # a mapping key of the wrong type, such as a number
        loc, message = loc[:-1], "keys must be non-empty strings"
    elif kind == "missing":
        message = "required field is missing"
    elif kind in ("tuple_type", "list_type"):
        message = "expected a list"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = "expected a mapping of keys to values"
    elif kind == "literal_error":  # only names and versions: never a secret
        message = f"{err['input']!r} is not valid; {message.replace('Input should be', 'expected')}"
    else:
        message = message.replace("Input should be", "expected")
    line = next((lines[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in lines), 1)
    return f"{filename}:{line}: {field_path(full_loc[: len(loc)])}: {message}"
