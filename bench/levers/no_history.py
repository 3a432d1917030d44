"""Lever: --history.limit 0."""

from patches import no_history, run

run(no_history)
