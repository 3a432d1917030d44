"""The request-independent run of one probe with its policies: deadline, attempts, verdict."""

from .execute import Outcome, conclude, execute
from .policies import run_with_policies

__all__ = ["Outcome", "conclude", "execute", "run_with_policies"]
