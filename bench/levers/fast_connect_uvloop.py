"""Lever: fast_connect on uvloop (uvloop's own sock_connect is its slow part here)."""

from patches import fast_connect, run, use_uvloop

run(use_uvloop, fast_connect)
