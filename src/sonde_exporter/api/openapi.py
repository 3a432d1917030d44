"""The OpenAPI 3.1 document of the management API, served at /v1/openapi.json.

Request schemas come from the request models themselves, so the document cannot drift from
what is validated; the rules the models check in code are added as patterns (patterns.py).
Response schemas are written here and a test checks real responses against them; the
property-based tester (schemathesis) and a generated client (openapi-python-client) run
against the served document in the tests.
"""

from __future__ import annotations

import functools
from typing import Any, get_args

from ..config.monitors import MonitorStatus
from ..kinds import SD_SCOPE
from ..storage.records import CheckStatus
from ..targets import RECEIVE_SCHEMES, SMTP_SCHEMES
from .body import MAX_OFFSET
from .errors import ErrorCode
from .kinds import KINDS, Kind
from .patterns import EMAIL, ICMP_HOST, TCP_HOST, TEXT, mail_url, name_pattern

Schema = dict[str, Any]

DATE_TIME: Schema = {"type": "string", "format": "date-time"}
STATUS: Schema = {"enum": list(get_args(CheckStatus))}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _field(kind: Kind, name: str) -> Schema:
    """A request field's schema as the model gives it (ranges and lengths stated once, in the
    model), without what only a request has (its default, its title)."""
    schema = kind.model.model_json_schema(by_alias=True)["properties"][name]
    return {k: v for k, v in schema.items() if k not in ("default", "title")}


_OPTIONAL_FIELDS: dict[str, Schema] = {
    "status": {"enum": list(get_args(MonitorStatus))},
    "module": {"type": "string"},
    "retries": _nullable(_ref("RetriesIn")),
    "degradedResponseTimeMs": _nullable({"type": "integer"}),
    "maxResponseTimeMs": _nullable({"type": "integer"}),
    "shouldFail": _nullable({"type": "boolean"}),
    "assertions": _nullable({"type": "array", "items": _ref("AssertionIn")}),
    "ipFamily": _nullable({"enum": ["IPv4", "IPv6"]}),
    "tracerouteOnError": _nullable({"type": "boolean"}),
    "tags": {"type": "array", "items": {"type": "string"}},
}


def _monitor(kind: Kind) -> Schema:
    own = [f for f in kind.fields if f not in kind.write_only]
    properties: Schema = {
        "id": {"type": "string", "pattern": f"^{kind.spec.monitor_prefix}[a-zA-Z0-9]+$"},
        "name": _field(kind, "name"),
        **{f: _field(kind, f) for f in own},
        "timeoutMs": _field(kind, "timeoutMs"),
        "intervalSeconds": _field(kind, "intervalSeconds"),
        "isEnabled": {"type": "boolean"},
        "lastCheckedAt": _nullable(DATE_TIME),
        "lastStatus": _nullable(STATUS),
        "lastResponseTimeMs": _nullable({"type": "integer"}),
        "createdAt": DATE_TIME,
        "updatedAt": DATE_TIME,
        **_OPTIONAL_FIELDS,
        **{f: _field(kind, f) for f in kind.extras},
    }
    return {"type": "object", "properties": properties, "required": list(properties)}


def _result(kind: Kind) -> Schema:
    properties: Schema = {
        "id": {"type": "string", "pattern": f"^{kind.spec.result_prefix}[a-zA-Z0-9]+$"},
        "status": STATUS,
        "responseTimeMs": _nullable({"type": "integer"}),
        "error": {"type": "string"},
        "checkedAt": DATE_TIME,
        "attempts": {"type": "integer", "minimum": 1},
        "degraded": {"type": "boolean"},
        "reason": _nullable({"type": "string"}),
        **{name: _nullable({"type": type_}) for name, type_ in kind.spec.result_details},
    }
    required = [p for p in properties if p != "error"]
    return {"type": "object", "properties": properties, "required": required}


def _rules(kind: Kind) -> dict[str, Schema]:
    """What the models check in code, as JSON Schema can say it, by request field."""
    printable = {"pattern": TEXT}
    rules: dict[str, Schema] = {
        "name": {"pattern": name_pattern()},
        "tags": {"pattern": name_pattern()},
        "module": {
            "pattern": name_pattern(),
            "description": "A module of config.yml with this kind's prober",
        },
        "timeoutMs": {"description": "At most the interval in effect (intervalSeconds x 1000)"},
        "email": {"pattern": EMAIL},
        "from": {"pattern": EMAIL},
        "username": printable,
        "password": {**printable, "writeOnly": True},
        "smtpUrl": {"pattern": mail_url(tuple(SMTP_SCHEMES))},
        "receiveUrl": {"pattern": mail_url(tuple(RECEIVE_SCHEMES))},
    }
    if "host" in kind.fields:
        rules["host"] = {"pattern": ICMP_HOST if kind.name == "icmp" else TCP_HOST}
    return rules


def _constrain(properties: Schema, rules: dict[str, Schema]) -> None:
    """Add each rule to its property's string (a list's items; the non-null choice)."""
    for name, rule in rules.items():
        schema = properties.get(name)
        if schema is None:
            continue
        schema = next((s for s in schema.get("anyOf", []) if s.get("type") != "null"), schema)
        schema = schema.get("items", schema)
        schema.update(rule)


def _request(kind: Kind, components: Schema) -> tuple[Schema, Schema]:
    """The create body from the model, and the update body: the same with no field required
    and no defaults (what is not sent keeps its stored value). Each has its own title:
    client generators name their classes after it."""
    schema = kind.model.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    components.update(schema.pop("$defs", {}))
    _constrain(schema["properties"], _rules(kind))
    schema["title"] = f"{kind.title}MonitorCreate"
    update: Schema = {k: v for k, v in schema.items() if k != "required"}
    update["title"] = f"{kind.title}MonitorUpdate"
    update["properties"] = {
        name: {k: v for k, v in prop.items() if k != "default"}
        for name, prop in schema["properties"].items()
    }
    return schema, update


def _json_body(schema: Schema) -> Schema:
    return {"content": {"application/json": {"schema": schema}}}


def _answer(description: str, schema: Schema | None = None) -> Schema:
    return {"description": description, **(_json_body(schema) if schema else {})}


def _errors(*statuses: int) -> Schema:
    words = {
        400: "Invalid request",
        401: "No or unknown key",
        403: "Key lacks the scope",
        404: "No such monitor",
        413: "Body too large",
        503: "Storage unavailable (with Retry-After)",
    }
    return {str(s): _answer(words[s], _ref("Error")) for s in statuses}


def _secured(scope: str, operation_id: str, tag: str) -> Schema:
    """The key needed (the bearer scheme's roles: OpenAPI 3.1 allows them for any scheme)."""
    return {
        "operationId": operation_id,
        "tags": [tag],
        "security": [{"bearer": [scope]}],
        "x-scope": scope,
    }


def _envelope(data: Schema, *extra: str) -> Schema:
    return {"type": "object", "properties": {"data": data}, "required": ["data", *extra]}


def _paths(kind: Kind) -> Schema:
    name, camel = kind.title, kind.name.capitalize()
    monitor, result = f"{name}Monitor", f"{name}Result"
    one = _envelope(_ref(monitor))
    many = _envelope({"type": "array", "items": _ref(monitor)})
    page = _envelope({"type": "array", "items": _ref(result)}, "pagination")
    page["properties"]["pagination"] = _ref("Pagination")
    tag = f"{name} monitors"

    def read(op: str) -> Schema:
        return _secured(kind.read_scope, op, tag)

    def write(op: str) -> Schema:
        return _secured(kind.write_scope, op, tag)

    id_param = {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": f"^{kind.spec.monitor_prefix}[a-zA-Z0-9]+$"},
    }
    by_id = {"id": "$response.body#/data/id"}
    links = {
        verb: {"operationId": f"{verb.lower()}{camel}Monitor{suffix}", "parameters": by_id}
        for verb, suffix in (("Get", ""), ("Update", ""), ("Delete", ""), ("List", "Results"))
    }
    created = {**_answer("Created", one), "links": links}
    return {
        kind.path: {
            "get": {
                **read(f"list{camel}Monitors"),
                "responses": {"200": _answer("All", many), **_errors(400, 401, 403, 503)},
            },
            "post": {
                **write(f"create{camel}Monitor"),
                "requestBody": {"required": True, **_json_body(_ref(f"{name}MonitorCreate"))},
                "responses": {"201": created, **_errors(400, 401, 403, 413, 503)},
            },
        },
        kind.path + "/{id}": {
            "parameters": [id_param],
            "get": {
                **read(f"get{camel}Monitor"),
                "responses": {
                    "200": _answer("The monitor", one),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
            "put": {
                **write(f"update{camel}Monitor"),
                "requestBody": {"required": True, **_json_body(_ref(f"{name}MonitorUpdate"))},
                "responses": {
                    "200": _answer("Updated", one),
                    **_errors(400, 401, 403, 404, 413, 503),
                },
            },
            "delete": {
                **write(f"delete{camel}Monitor"),
                "responses": {
                    "204": _answer("Deleted, with its history"),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
        kind.path + "/{id}/results": {
            "parameters": [id_param],
            "get": {
                **read(f"list{camel}MonitorResults"),
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "schema": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": MAX_OFFSET,
                            "default": 0,
                        },
                    },
                ],
                "responses": {
                    "200": _answer("Newest first", page),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
        },
    }


def _service_discovery() -> Schema:
    """/v1/sd, served by the monitor engine (monitors/routes.py) behind the sd:read key."""
    group = {
        "type": "object",
        "properties": {
            "targets": {"type": "array", "items": {"type": "string"}},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["targets", "labels"],
    }
    return {
        "/v1/sd": {
            "get": {
                **_secured(SD_SCOPE, "getServiceDiscovery", "Service discovery"),
                "description": "Prometheus HTTP service discovery: one target group per "
                "checked monitor, for scraping /probe?monitor=ID",
                "responses": {
                    "200": _answer("Target groups", {"type": "array", "items": group}),
                    **_errors(401, 403, 503),
                },
            }
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "getOpenapiDocument",
                "tags": ["Document"],
                "security": [],
                "responses": {"200": _answer("This document", {"type": "object"})},
            }
        },
    }


@functools.cache
def document() -> Schema:
    components: Schema = {
        "Error": {
            "type": "object",
            "properties": {
                "error": {
                    "type": "object",
                    "properties": {
                        "code": {"enum": list(get_args(ErrorCode))},
                        "message": {"type": "string"},
                    },
                    "required": ["code", "message"],
                }
            },
            "required": ["error"],
        },
        "Pagination": {
            "type": "object",
            "properties": {
                "total": {"type": "integer", "minimum": 0},
                "limit": {"type": "integer", "minimum": 1, "maximum": 200},
                "offset": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET},
            },
            "required": ["total", "limit", "offset"],
        },
    }
    paths: Schema = {}
    for kind in KINDS:
        create, update = _request(kind, components)
        components[f"{kind.title}MonitorCreate"] = create
        components[f"{kind.title}MonitorUpdate"] = update
        components[f"{kind.title}Monitor"] = _monitor(kind)
        components[f"{kind.title}Result"] = _result(kind)
        paths.update(_paths(kind))
    paths.update(_service_discovery())
    return {
        "openapi": "3.1.0",
        "info": {"title": "sonde-exporter management API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
