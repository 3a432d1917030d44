"""sonde-exporter: a blackbox prober for Prometheus (TCP, ICMP and email round trips)."""

__version__ = "0.1.0"
