"""Lever: sonde-exporter on uvloop."""

from patches import run, use_uvloop

run(use_uvloop)
