"""Shared helpers: run the CLI as a user would. Verilator builds are cached by hash under HWFORGE_BUILD_CACHE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


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
