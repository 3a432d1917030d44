"""Scheduled monitors: their plans, the scheduler that runs them, their history and metrics."""
