"""The request-independent run of one probe with its policies: deadline, attempts, verdict."""

from .policies import run_with_policies

__all__ = ["run_with_policies"]
