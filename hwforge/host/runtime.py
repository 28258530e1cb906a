"""`Artifact`: the one runtime API over every target's backend."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwforge.compiler.artifact import read_manifest
from hwforge.compiler.results import VerifyResult


@dataclass
class Artifact:
    """A verified-on-load artifact directory (manifest hashes are checked when it is opened)."""

    path: Path
    manifest: dict[str, Any]

    @property
    def target(self) -> str:
        return str(self.manifest["target"])

    def _target(self):
        from hwforge.compiler.targets import get_target

        return get_target(self.target)

    def run(self, inputs: dict[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
        """Run ``inputs`` (same shapes as compiled) on the target's backend; returns float outputs."""
        return self._target().run(self.path, self.manifest, inputs, seed)

    def verify(self, seed: int = 0) -> VerifyResult:
        """Run the artifact's reference inputs and compare with its PyTorch reference outputs."""
        return self._target().verify(self.path, self.manifest, seed)


def load_artifact(path: str | Path) -> Artifact:
    path = Path(path)
    return Artifact(path, read_manifest(path))
