"""The `Target` interface that `hwforge compile/verify/build/report` drive."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwforge.errors import ConfigError

if TYPE_CHECKING:
    from hwforge.compiler.artifact import ArtifactWriter
    from hwforge.compiler.frontend import LoadedModel
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
    """One compilation target. Subclasses implement every method; options arrive as ``--set`` strings."""

    name: str = ""
    description: str = ""
    status: str = "ready"
    hardware: str = ""
    verified_by: str = ""
    build_message: str = "building {artifact} for {board} (first YoWASP run compiles WebAssembly, about a minute)"
    """The progress line `hwforge build` prints (``{artifact}`` and ``{board}`` are filled in)."""

    def parse_options(self, options: dict[str, str]) -> dict[str, Any]:
        """Validate ``--set`` options; raise ConfigError naming the bad key. Returns canonical options."""
        raise NotImplementedError

    def load_own(self, spec: str, options: dict[str, Any]) -> OwnModel | None:
        """Hook for targets whose MODEL is not a network (``smartupdate`` compiles a torch.optim optimizer).

        Return None (the default) and the driver loads ``spec`` with the torch frontend, runs `passes` and takes
        the expected outputs from the IR interpreter. Return an `OwnModel` and the driver instead writes its
        graph, inputs and expected outputs as given and calls `emit` with it as the ``model`` argument.
        """
        return None

    def passes(self, options: dict[str, Any]) -> list:
        """The pass pipeline that specialises a float graph for this target."""
        raise NotImplementedError

    def pipeline_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """Extra options the passes read (for example the quantisation width)."""
        return {}

    def emit(self, graph: Graph, model: LoadedModel, options: dict[str, Any], writer: ArtifactWriter,
             inputs: dict[str, Any]) -> dict[str, Any]:
        """Write the target's files into ``writer``; return the compile report."""
        raise NotImplementedError

    def verify(self, artifact_dir: Path, manifest: dict[str, Any], seed: int) -> dict[str, Any]:
        """Run the artifact on its simulator/emulator and compare with the PyTorch reference."""
        raise NotImplementedError

    def run(self, artifact_dir: Path, manifest: dict[str, Any], inputs: dict[str, Any],
            seed: int = 0) -> dict[str, Any]:
        """Run new inputs through the artifact on its backend (the host runtime's entry point)."""
        raise NotImplementedError

    def build(self, artifact_dir: Path, manifest: dict[str, Any], board: str) -> dict[str, Any]:
        """Produce the deployable binary (bitstream, DPU binary, xclbin)."""
        raise NotImplementedError


class PlannedTarget(Target):
    """A target on the roadmap whose implementation has not landed; every use is a clear error."""

    status = "planned"

    def __init__(self, name: str, description: str, issue: int):
        self.name = name
        self.description = description
        self.issue = issue

    def parse_options(self, options: dict[str, str]) -> dict[str, Any]:
        raise ConfigError(f"target {self.name!r} is planned (issue {self.issue}) and cannot compile yet")


def output_metrics(hardware: np.ndarray, reference: np.ndarray, labels: np.ndarray | None = None,
                   int_reference: np.ndarray | None = None) -> dict[str, float]:
    """Error of a hardware output against float PyTorch, and argmax accuracies when labels are known."""
    hw = np.asarray(hardware, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    metrics = {"max_abs_error_vs_float": float(np.max(np.abs(hw - ref))),
               "mean_abs_error_vs_float": float(np.mean(np.abs(hw - ref)))}
    if labels is not None and hw.ndim == 2 and len(labels) == len(hw):
        metrics["accuracy_float"] = float(np.mean(ref.argmax(1) == labels))
        if int_reference is not None:
            metrics["accuracy_int_reference"] = float(np.mean(np.asarray(int_reference).argmax(1) == labels))
        metrics["accuracy_hardware"] = float(np.mean(hw.argmax(1) == labels))
    return metrics


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
