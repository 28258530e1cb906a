"""Shared fixtures: Verilator models are built once per configuration (and cached across sessions)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def build_cache() -> Path | None:
    """Cache root for Verilator builds (``HWFORGE_BUILD_CACHE`` if set, else the user cache)."""
    env = os.environ.get("HWFORGE_BUILD_CACHE")
    return Path(env) if env else None


