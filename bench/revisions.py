"""What the A/B benchmarks share: a revision's src/ tree to run, and the loopback target.

`checkout(rev, into)` unpacks `src/` of a git revision (so PYTHONPATH can name it);
`tcp_target()` runs bench/tcp_target.py (accept and close, in its own process, so its CPU is
not charged to the side measured) and yields its port on 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def checkout(rev: str, into: Path) -> Path:
    """`src/` of `rev`, unpacked below `into`; returns the src directory."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into / "src"


@contextmanager
def tcp_target() -> Iterator[int]:
    """A loopback listener that accepts and closes; yields its port."""
    target = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "tcp_target.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert target.stdout is not None
        yield int(target.stdout.readline())
    finally:
        target.terminate()
        target.wait(10)
