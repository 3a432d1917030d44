"""The kind table: every prober sonde-exporter has, and what each one is called everywhere.

A kind's name is its prober's name, its config block's key, the prefix of its monitor and
result IDs, the start of its API path and of its API scopes. The prober table
(probers/__init__.py), the config enum, monitor IDs, the API's kinds, scopes and OpenAPI
document all derive from this table (tests/test_kinds.py checks that they agree).

Adding a prober touches:
1. its row here, and its name in `KindName`;
2. its module in probers/ (`PROBER = Prober(parse_target=..., probe=...)` and its
   `ProbeGauge`s, `ctx.observe(<source>=...)` where it measures its assertion sources);
3. its settings block in config/ as a field of `config.Module` named like the kind;
4. its API request model (api/models.py) and its `api.kinds.Kind` row;
5. a dashboard panel for each of its gauges (grafana/dashboard.py; a test checks);
6. the docs (docs/configuration.md, docs/metrics.md) and a test module `tests/test_<name>.py`
   (docs/development.md lists the same steps).

This module imports nothing of the package: config, probers and the API all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

KindName = Literal["tcp", "icmp", "email"]
"""Every prober name (a type for the config enum); kept equal to `KINDS`' keys (a test checks)."""


@dataclass(frozen=True, slots=True)
class KindSpec:
    """One prober kind."""

    name: KindName
    title: str
    """For messages: "the maximum number of TCP monitors"."""
    prober_module: str
    """The module that implements it, relative to the probers package (imported on first use)."""
    sources: tuple[str, ...]
    """The assertion sources its prober measures (config.policies.Source)."""
    result_details: tuple[tuple[str, str], ...] = ()
    """What an API result of this kind shows beyond the shared fields, with its JSON type
    (api/kinds.py renders them, api/openapi.py describes them)."""
    has_ports: bool = False
    """Whether its targets name a port (so `allowed_ports` applies)."""

    @property
    def monitor_prefix(self) -> str:
        """`tcpm_…`: the ID prefix of its monitors."""
        return f"{self.name}m_"

    @property
    def result_prefix(self) -> str:
        """`tcpr_…`: the ID prefix of its results."""
        return f"{self.name}r_"

    @property
    def api_path(self) -> str:
        return f"/v1/{self.name}-monitors"

    @property
    def read_scope(self) -> str:
        return f"{self.name}-monitors:read"

    @property
    def write_scope(self) -> str:
        return f"{self.name}-monitors:write"


KINDS: dict[str, KindSpec] = {
    spec.name: spec
    for spec in (
        KindSpec("tcp", "TCP", ".tcp", ("response_data", "response_time"), has_ports=True),
        KindSpec(
            "icmp",
            "ICMP",
            ".icmp",
            ("response_time", "packet_loss", "rtt_avg", "rtt_max", "jitter"),
            result_details=tuple(
                (name, "number")
                for name in (
                    "packetsSent",
                    "packetsReceived",
                    "packetLoss",
                    "rttMinMs",
                    "rttAvgMs",
                    "rttMaxMs",
                )
            ),
        ),
        KindSpec(
            "email",
            "Email",
            ".email.probe",
            ("response_time", "delivery_time"),
            result_details=(("deliveryTimeMs", "integer"),),
            has_ports=True,
        ),
    )
}

NAMES: tuple[str, ...] = tuple(KINDS)

SD_SCOPE = "sd:read"
SCOPES: tuple[str, ...] = (
    *(scope for spec in KINDS.values() for scope in (spec.read_scope, spec.write_scope)),
    SD_SCOPE,
)
"""Every API key scope. Write does not imply read: a key that must do both gets both."""
