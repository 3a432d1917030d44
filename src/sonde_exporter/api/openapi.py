"""The OpenAPI 3.1 document of the management API, served at /v1/openapi.json.

Request schemas come from the request models themselves, so the document cannot drift from
what is validated; response schemas are written here and a test checks real responses
against them.
"""

from __future__ import annotations

import functools
from typing import Any, get_args

from .errors import ErrorCode
from .kinds import KINDS, Kind

Schema = dict[str, Any]

DATE_TIME: Schema = {"type": "string", "format": "date-time"}
STATUS: Schema = {"enum": ["up", "down", "timeout"]}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


_KIND_FIELDS: dict[str, Schema] = {
    "host": {"type": "string", "minLength": 1, "maxLength": 255},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "data": _nullable({"type": "string"}),
    "packetSize": {"type": "integer", "minimum": 0, "maximum": 65507},
    "count": {"type": "integer", "minimum": 1, "maximum": 100},
    "smtpUrl": {"type": "string"},
    "receiveUrl": {"type": "string"},
    "email": {"type": "string"},
    "from": _nullable({"type": "string"}),
    "username": {"type": "string"},
}

_OPTIONAL_FIELDS: dict[str, Schema] = {
    "status": {"enum": ["active", "maintenance", "disabled"]},
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

_RESULT_DETAILS: dict[str, dict[str, Schema]] = {
    "tcp": {},
    "icmp": {
        name: _nullable({"type": "number"})
        for name in (
            "packetsSent",
            "packetsReceived",
            "packetLoss",
            "rttMinMs",
            "rttAvgMs",
            "rttMaxMs",
        )
    },
    "email": {"deliveryTimeMs": _nullable({"type": "integer"})},
}


def _monitor(kind: Kind) -> Schema:
    own = [f for f in kind.fields if f not in kind.write_only]
    properties: Schema = {
        "id": {"type": "string", "pattern": f"^{kind.name}m_[a-zA-Z0-9]+$"},
        "name": {"type": "string", "minLength": 1, "maxLength": 255},
        **{f: _KIND_FIELDS[f] for f in own},
        "timeoutMs": {"type": "integer", "minimum": 100, "maximum": 60000},
        "intervalSeconds": {"type": "integer", "minimum": 10, "maximum": 86400},
        "isEnabled": {"type": "boolean"},
        "lastCheckedAt": _nullable(DATE_TIME),
        "lastStatus": _nullable(STATUS),
        "lastResponseTimeMs": _nullable({"type": "integer"}),
        "createdAt": DATE_TIME,
        "updatedAt": DATE_TIME,
        **_OPTIONAL_FIELDS,
        **{f: _KIND_FIELDS[f] for f in kind.extras},
    }
    return {"type": "object", "properties": properties, "required": list(properties)}


def _result(kind: Kind) -> Schema:
    properties: Schema = {
        "id": {"type": "string", "pattern": f"^{kind.name}r_[a-zA-Z0-9]+$"},
        "status": STATUS,
        "responseTimeMs": _nullable({"type": "integer"}),
        "error": {"type": "string"},
        "checkedAt": DATE_TIME,
        "attempts": {"type": "integer", "minimum": 1},
        "degraded": {"type": "boolean"},
        "reason": _nullable({"type": "string"}),
        **_RESULT_DETAILS[kind.name],
    }
    required = [p for p in properties if p != "error"]
    return {"type": "object", "properties": properties, "required": required}


def _request(kind: Kind, components: Schema) -> tuple[Schema, Schema]:
    """The create body from the model, and the update body: the same without `required`."""
    schema = kind.model.model_json_schema(
        by_alias=True, ref_template="#/components/schemas/{model}"
    )
    components.update(schema.pop("$defs", {}))
    update = {k: v for k, v in schema.items() if k != "required"}
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
        503: "Storage unavailable",
    }
    return {str(s): _answer(words[s], _ref("Error")) for s in statuses}


def _paths(kind: Kind) -> Schema:
    name = kind.title
    monitor, result = f"{name}Monitor", f"{name}Result"
    one = {"type": "object", "properties": {"data": _ref(monitor)}, "required": ["data"]}
    many = {
        "type": "object",
        "properties": {"data": {"type": "array", "items": _ref(monitor)}},
        "required": ["data"],
    }
    page = {
        "type": "object",
        "properties": {
            "data": {"type": "array", "items": _ref(result)},
            "pagination": _ref("Pagination"),
        },
        "required": ["data", "pagination"],
    }
    secured: Schema = {"security": [{"bearer": []}]}
    read = {**secured, "x-scope": kind.read_scope}
    write = {**secured, "x-scope": kind.write_scope}
    id_param = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        kind.path: {
            "get": {**read, "responses": {"200": _answer("All", many), **_errors(401, 403, 503)}},
            "post": {
                **write,
                "requestBody": {"required": True, **_json_body(_ref(f"{name}MonitorCreate"))},
                "responses": {"201": _answer("Created", one), **_errors(400, 401, 403, 413, 503)},
            },
        },
        kind.path + "/{id}": {
            "parameters": [id_param],
            "get": {
                **read,
                "responses": {"200": _answer("The monitor", one), **_errors(401, 403, 404, 503)},
            },
            "put": {
                **write,
                "requestBody": {"required": True, **_json_body(_ref(f"{name}MonitorUpdate"))},
                "responses": {
                    "200": _answer("Updated", one),
                    **_errors(400, 401, 403, 404, 413, 503),
                },
            },
            "delete": {
                **write,
                "responses": {
                    "204": _answer("Deleted, with its history"),
                    **_errors(401, 403, 404, 503),
                },
            },
        },
        kind.path + "/{id}/results": {
            "parameters": [id_param],
            "get": {
                **read,
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "default": 0},
                    },
                ],
                "responses": {
                    "200": _answer("Newest first", page),
                    **_errors(400, 401, 403, 404, 503),
                },
            },
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
                "offset": {"type": "integer", "minimum": 0},
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
    return {
        "openapi": "3.1.0",
        "info": {"title": "sonde-exporter management API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
