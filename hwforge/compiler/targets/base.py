"""The `Target` interface that `hwforge compile/verify/build/report` drive."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwforge.compiler.results import CompileReport, VerifyResult
from hwforge.errors import ConfigError
from hwforge.options import Options

if TYPE_CHECKING:
    from hwforge.compiler import LoadedModel
    from hwforge.compiler.artifact import ArtifactWriter
    from hwforge.compiler.passes import Pass
    from hwforge.ir import Graph


@dataclass
class OwnModel:
    """A compile input that a target loads itself instead of the torch frontend (see `Target.load_own`)."""

    name: str
    source_hash: str
    graph: Graph
    inputs: dict[str, np.ndarray]
    """Reference inputs, written to ``inputs/<name>.npy``."""
    expected: dict[str, np.ndarray]
    """Reference outputs the target computed (for example with torch.optim), written to ``expected/``."""
    payload: Any = None
    """Target-specific data for `Target.emit` (for example the OptimizerSpec)."""
    manifest: dict[str, Any] = field(default_factory=dict)
    """Extra manifest fields."""


class Target:
    """One compilation target: a vertical slice (options type, passes, emitter, verifier, build, runtime backend).

    The driver parses ``--set`` once into `options_type` (a frozen `hwforge.options.Options` dataclass) and every
    method receives that typed object; an artifact's manifest stores its JSON form (`Options.to_dict`), which
    `options_from_manifest` turns back into the same object.
    """

    name: str = ""
    description: str = ""
    status: str = "ready"
    hardware: str = ""
    verified_by: str = ""
    options_type: type[Options] | None = None
    build_message: str = "building {artifact} for {board} (first YoWASP run compiles WebAssembly, about a minute)"
    """The progress line `hwforge build` prints (``{artifact}`` and ``{board}`` are filled in)."""

    def parse_options(self, sets: Mapping[str, str]) -> Options:
        """``--set`` strings -> this target's typed options (one-line ConfigError naming a bad key)."""
        assert self.options_type is not None
        return self.options_type.from_sets(sets)

    def options_from_manifest(self, manifest: Mapping[str, Any]) -> Options:
        """The typed options an artifact was compiled with."""
        assert self.options_type is not None
        return self.options_type.from_dict(manifest["options"])

    def describe_options(self) -> list[dict[str, Any]]:
        """The options table (name, type, default, allowed values, meaning) of ``hwforge targets --json``."""
        return self.options_type.describe() if self.options_type is not None else []

    def load_own(self, spec: str, options: Any) -> OwnModel | None:
        """Hook for targets whose MODEL is not a network (``smartupdate`` compiles a torch.optim optimizer).

        Return None (the default) and the driver loads ``spec`` with the torch frontend, runs `passes` and takes
        the expected outputs from the IR interpreter. Return an `OwnModel` and the driver instead writes its
        graph, inputs and expected outputs as given and calls `emit` with it as the ``model`` argument.
        """
        return None

    def passes(self, options: Any) -> list[Pass]:
        """The pass pipeline that specialises a float graph for this target, built from its options."""
        raise NotImplementedError

    def emit(self, graph: Graph, model: LoadedModel | OwnModel, options: Any, writer: ArtifactWriter,
             inputs: dict[str, Any]) -> CompileReport:
        """Write the target's files into ``writer``; return the compile report."""
        raise NotImplementedError

    def verify(self, artifact_dir: Path, manifest: dict[str, Any], seed: int) -> VerifyResult:
        """Run the artifact on its simulator/emulator and compare with the PyTorch reference."""
        raise NotImplementedError

    def run(self, artifact_dir: Path, manifest: dict[str, Any], inputs: dict[str, Any],
            seed: int = 0) -> dict[str, np.ndarray]:
        """Run new inputs through the artifact on its backend (the host runtime's entry point)."""
        raise NotImplementedError

    def build(self, artifact_dir: Path, manifest: dict[str, Any], board: str,
              clock_mhz: float | None = None) -> dict[str, Any]:
        """Produce the deployable binary (bitstream, DPU binary, xclbin)."""
        raise NotImplementedError


class PlannedTarget(Target):
    """A target on the roadmap whose implementation has not landed; every use is a clear error."""

    status = "planned"

    def __init__(self, name: str, description: str, issue: int):
        self.name = name
        self.description = description
        self.issue = issue

    def parse_options(self, sets: Mapping[str, str]) -> Options:
        raise ConfigError(f"target {self.name!r} is planned (issue {self.issue}) and cannot compile yet")


_TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    if target.name in _TARGETS and _TARGETS[target.name].status != "planned":
        raise ValueError(f"target {target.name!r} registered twice")
    _TARGETS[target.name] = target
    return target


def get_target(name: str) -> Target:
    if name not in _TARGETS:
        raise ConfigError(f"unknown target {name!r}; known targets: {', '.join(sorted(_TARGETS))}")
    return _TARGETS[name]


def targets() -> list[Target]:
    return [_TARGETS[name] for name in sorted(_TARGETS)]
