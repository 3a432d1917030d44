"""The request-independent run of one probe with its policies: deadline, attempts, verdict."""

from .execute import Outcome, execute, refused
from .policies import run_with_policies
from .traceroute import Traceroutes

__all__ = ["Outcome", "Traceroutes", "execute", "refused", "run_with_policies"]
