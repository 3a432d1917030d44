"""Config errors: YAML and validation problems turned into `file:line: field: message` lines."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from pydantic_core import PydanticCustomError

_FIELD_ERROR = "field_error"


class ConfigError(Exception):
    """A config file that cannot be used; the message has one line per problem."""


def field_error(field: str, message: str) -> PydanticCustomError:
    """For a model validator to raise when the fault lies in one of its fields: the error then
    names that field and its line (the `starttls:` line, not its parent `receive:`). A dotted
    `field` ("monitors.2.target") names a field further down."""
    return PydanticCustomError(_FIELD_ERROR, "{message}", {"field": field, "message": message})


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
                    f"{key_node.start_mark.line + 1}: {_field((*path, key))}: defined twice"
                )
            seen.add(key)
            yield (*path, key), key_node.start_mark.line + 1
            yield from key_lines(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield (*path, index), item.start_mark.line + 1
            yield from key_lines(item, (*path, index))


def _field(loc: tuple[Any, ...]) -> str:
    """modules.smtp.tcp.query_response[2].expect"""
    out = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc)
    return out.lstrip(".") or "(top level)"


def describe(err: Any, filename: str, lines: dict[tuple[str, ...], int]) -> str:
    full_loc = tuple(err["loc"])
    kind = err["type"]
    if kind == _FIELD_ERROR:
        # "monitors.2.target": a path below the validating model, list indexes as numbers
        parts = err["ctx"]["field"].split(".")
        full_loc = (*full_loc, *(int(p) if p.isdigit() else p for p in parts))
    loc = tuple(str(p) for p in full_loc)
    message = str(err["msg"]).removeprefix("Value error, ")
    if loc and loc[-1] == "[key]":  # a mapping key of the wrong type, such as a number
        loc, message = loc[:-1], "keys must be non-empty strings"
    elif kind == "extra_forbidden":
        message = "unknown field"
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
    return f"{filename}:{line}: {_field(full_loc[: len(loc)])}: {message}"
