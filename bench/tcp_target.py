"""Loopback TCP target for the benchmark: accept each connection and close it at once.

Runs in its own process so its CPU is not charged to an exporter. Binds an ephemeral port
on 127.0.0.1 (or the address given) and prints the port on the first line of stdout.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import sys


def main() -> None:
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    if host not in ("127.0.0.1", "::1") and not host.startswith("127."):
        sys.exit(f"tcp_target: refusing to listen on non-loopback address {host!r}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as listener:
        listener.bind((host, 0))
        listener.listen(4096)  # capped by net.core.somaxconn
        print(listener.getsockname()[1], flush=True)
        while True:
            conn, _ = listener.accept()
            conn.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
