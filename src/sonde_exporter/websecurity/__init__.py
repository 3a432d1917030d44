"""Serving securely: exporter-toolkit's web config (TLS, client certificates, basic auth, rate limits, response headers), its reloading, and the request guard it installs."""

from .loader import load_web_config
from .model import WebConfig
from .serving import install_web_security

__all__ = ["WebConfig", "install_web_security", "load_web_config"]
