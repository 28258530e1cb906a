"""Shared fixtures: run the CLI as a user would, and keep Verilator builds in one cache per test run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 900) -> CliResult:
    """Run `python -m hwforge ARGS` in a subprocess (exit codes and stdout exactly as a user sees them)."""
    proc = subprocess.run([sys.executable, "-m", "hwforge", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, "COLUMNS": "200"})
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="session", autouse=True)
def _build_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Verilator builds are keyed by a hash of the Verilog; share them between tests of one run."""
    if "HWFORGE_BUILD_CACHE" not in os.environ:
        os.environ["HWFORGE_BUILD_CACHE"] = str(Path.home() / ".cache" / "hwforge" / "verilator")
