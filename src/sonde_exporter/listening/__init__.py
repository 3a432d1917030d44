"""The exporter's listeners: sockets, a bound on client connections, their timeouts, and the file descriptors that keep probes working under a flood of clients."""

from .fdlimit import connection_budget, raise_fd_limit
from .listener import ConnectionLimits, Listeners

__all__ = ["ConnectionLimits", "Listeners", "connection_budget", "raise_fd_limit"]
