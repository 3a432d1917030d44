"""The kind table (kinds.py) is the one list of probers: every other list derives from it or
agrees with it. Adding a prober to the table without the rest fails here."""

from __future__ import annotations

from typing import get_args

from sonde_exporter.api import kinds as api_kinds
from sonde_exporter.api.auth import SCOPES
from sonde_exporter.api.openapi import document
from sonde_exporter.config import Module, ProberName
from sonde_exporter.config.modules import ForeignProberName
from sonde_exporter.config.monitors import STATUS_ALIASES, MonitorStatus
from sonde_exporter.config.policies import SOURCES, Source
from sonde_exporter.kinds import KINDS, NAMES, SD_SCOPE, KindName
from sonde_exporter.monitors.identity import config_monitor_id, kind_of, new_monitor_id
from sonde_exporter.probers import PROBERS, get_prober
from sonde_exporter.storage import ResultRecord, result_id
from sonde_exporter.storage.records import CheckStatus


def test_the_type_of_prober_names_lists_the_table() -> None:
    assert get_args(KindName) == NAMES
    assert get_args(ProberName) == NAMES
    assert not set(get_args(ForeignProberName)) & set(NAMES)


def test_every_kind_has_a_prober_and_a_config_block() -> None:
    assert tuple(PROBERS) == NAMES
    for name in NAMES:
        assert get_prober(name).parse_target is not None
        assert name in Module.model_fields, f"config.Module has no {name!r} block"


def test_assertion_sources_are_the_tables() -> None:
    assert tuple(SOURCES) == NAMES
    every_source = set(get_args(Source))
    for spec in KINDS.values():
        assert set(spec.sources) <= every_source
    assert every_source == {s for spec in KINDS.values() for s in spec.sources}


def test_monitor_ids_carry_the_kind() -> None:
    for spec in KINDS.values():
        for monitor_id in (new_monitor_id(spec.name), config_monitor_id(spec.name, "x")):
            assert monitor_id.startswith(spec.monitor_prefix)
            assert kind_of(monitor_id) == spec.name
        assert result_id(spec.name, 7).startswith(spec.result_prefix)
    assert kind_of("httpm_abc") is None


def test_the_api_serves_every_kind_with_its_paths_and_scopes() -> None:
    assert tuple(k.name for k in api_kinds.KINDS) == NAMES
    assert (
        *(s for spec in KINDS.values() for s in (spec.read_scope, spec.write_scope)),
        SD_SCOPE,
    ) == SCOPES
    paths = document()["paths"]
    for kind in api_kinds.KINDS:
        spec = KINDS[kind.name]
        assert kind.spec is spec
        assert (kind.path, kind.read_scope, kind.write_scope) == (
            spec.api_path,
            spec.read_scope,
            spec.write_scope,
        )
        for path in (spec.api_path, spec.api_path + "/{id}", spec.api_path + "/{id}/results"):
            assert path in paths
        scopes = {op["x-scope"] for op in paths[spec.api_path].values() if "x-scope" in op}
        assert scopes == {spec.read_scope, spec.write_scope}
    kind_paths = {p for p in paths if p.startswith("/v1/") and "-monitors" in p}
    assert {p.split("/")[2] for p in kind_paths} == {f"{n}-monitors" for n in NAMES}


def test_result_details_are_the_tables_in_the_answer_and_the_document() -> None:
    schemas = document()["components"]["schemas"]
    for kind in api_kinds.KINDS:
        spec = KINDS[kind.name]
        result = ResultRecord(f"{spec.monitor_prefix}1", 0.0, "up", 0.1, None, None, seq=1)
        shown = kind.render_result(result)
        base = {"id", "status", "responseTimeMs", "checkedAt", "attempts", "degraded", "reason"}
        assert tuple(k for k in shown if k not in base) == tuple(n for n, _ in spec.result_details)
        properties = schemas[f"{kind.title}Result"]["properties"]
        assert set(properties) - base - {"error"} == {n for n, _ in spec.result_details}


def test_status_sets_have_one_spelling() -> None:
    """The document's enums are the config's and the store's types."""
    schemas = document()["components"]["schemas"]
    monitor = schemas["TCPMonitor"]["properties"]
    assert monitor["status"]["enum"] == list(get_args(MonitorStatus))
    assert monitor["lastStatus"]["anyOf"][0]["enum"] == list(get_args(CheckStatus))
    assert set(STATUS_ALIASES.values()) <= set(get_args(MonitorStatus))
    create = schemas["TCPMonitorCreate"]["properties"]["status"]
    create_enum = next(s for s in create.get("anyOf", [create]) if "enum" in s)["enum"]
    assert create_enum == [*get_args(MonitorStatus), *STATUS_ALIASES]


def test_numeric_ranges_of_the_answers_are_the_requests() -> None:
    """A range is stated once (the request model, or the config model it takes it from)."""
    schemas = document()["components"]["schemas"]
    for kind in api_kinds.KINDS:
        create = schemas[f"{kind.title}MonitorCreate"]["properties"]
        shown = schemas[f"{kind.title}Monitor"]["properties"]
        for field in ("timeoutMs", "intervalSeconds", "port", "packetSize", "count"):
            if field in create:
                bounds = {k: create[field][k] for k in ("minimum", "maximum")}
                assert {k: shown[field][k] for k in bounds} == bounds
    icmp = schemas["ICMPMonitorCreate"]["properties"]
    config = Module.model_json_schema()["$defs"]["IcmpModule"]["properties"]
    assert icmp["packetSize"]["maximum"] == config["payload_size"]["maximum"]
    assert icmp["count"]["maximum"] == config["count"]["maximum"]
