"""The prober table: prober name -> how to read its target and how to run it.

Adding a prober means one module in this package, one row here, and its settings block in
config.Module.
"""

from __future__ import annotations

from typing import Any

from ..probe import Prober
from ..targets import parse_email_target, parse_host, parse_host_port
from .email import probe_email
from .icmp import probe_icmp
from .tcp import probe_tcp

PROBERS: dict[str, Prober[Any, Any]] = {
    "tcp": Prober(parse_target=parse_host_port, probe=probe_tcp),
    "icmp": Prober(parse_target=parse_host, probe=probe_icmp),
    "email": Prober(parse_target=parse_email_target, probe=probe_email, accepts_empty_target=True),
}
