"""Where hwforge keeps its content-addressed build caches, and the lock that guards each build.

Verilator models, Amaranth conversions, g++-built HLS kernels and the UPMEM emulation binaries are all keyed by a
hash of what they were built from, so any number of processes (pytest workers, benchmark runs) can share one
cache; the lock makes sure two of them never build the same directory at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def cache_root() -> Path:
    """Root of hwforge's build caches: ``$HWFORGE_BUILD_CACHE`` or ``~/.cache/hwforge``."""
    env = os.environ.get("HWFORGE_BUILD_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "hwforge"


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created with its parents) for the ``with`` body."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
