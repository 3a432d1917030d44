"""Writes grafana/dashboard.json, the sonde-exporter dashboard for Grafana 10 and 11.

The JSON is generated so that every panel filters on the same template variables and every
panel id stays stable (alert rules link to them). Run `python grafana/dashboard.py` after an
edit; tests/test_dashboard.py fails while dashboard.json differs from what this writes.

The generator itself is the package grafana/dashboards/ beside this script: one row per
concern, each row a function returning its panels (see dashboards/layout.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script it is there; loaded from a file path it is not
    sys.path.insert(0, str(HERE))

from dashboards import render  # noqa: E402  (needs the path above)

OUTPUT = Path(__file__).with_name("dashboard.json")

__all__ = ["render"]

if __name__ == "__main__":
    OUTPUT.write_text(render())
    sys.stdout.write(f"wrote {OUTPUT}\n")
