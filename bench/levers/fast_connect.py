"""Lever: the TCP prober connects without loop.sock_connect (see patches.connect_without_sock_connect)."""

from patches import fast_connect, run

run(fast_connect)
