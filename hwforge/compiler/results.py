"""Typed results of `hwforge compile` and `hwforge verify`: what the CLI prints, `report` reads and ``--json`` emits.

Every target returns a `CompileReport` from ``emit`` and a `VerifyResult` from ``verify``, usually a subclass with
its own fields (`dataclasses`, so the JSON form follows from the declaration). The JSON form is stable and
documented in ``docs/json.md``; ``schema`` is bumped on an incompatible change.

Per-layer rows are `LayerRecord`s: a few common columns (``node``, ``cycles``, ``bound_cycles``,
``mismatches``) that the CLI, the plots and the search rely on, plus target-specific columns in ``details``,
which the JSON form flattens into the row.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

SCHEMA = 1


def to_jsonable(value: Any) -> Any:
    """Dataclasses, tuples and numpy scalars -> plain JSON values (recursively)."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass
class LayerRecord:
    """One row of a per-layer table (a layer, an aggregation, a DPU launch, a kernel stream)."""

    node: str
    cycles: int | None = None
    """Measured (simulated) or modelled cycles of this layer, where the backend reports them per layer."""
    bound_cycles: int | None = None
    """The roofline prediction: max(compute cycles, bytes moved / bus bytes per cycle)."""
    mismatches: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"node": self.node}
        for key in ("cycles", "bound_cycles", "mismatches"):
            if getattr(self, key) is not None:
                row[key] = getattr(self, key)
        row.update(to_jsonable(self.details))
        return row


@dataclass
class OutputMetrics:
    """A network output against float PyTorch (and argmax accuracies when the inputs are labelled)."""

    max_abs_error_vs_float: float
    mean_abs_error_vs_float: float
    accuracy_float: float | None = None
    accuracy_int_reference: float | None = None
    accuracy_hardware: float | None = None

    @classmethod
    def compare(cls, hardware: np.ndarray, reference: np.ndarray, labels: np.ndarray | None = None,
                int_reference: np.ndarray | None = None) -> OutputMetrics:
        """Errors over every value; accuracies over the rows whose label is >= 0. A negative label marks a row
        outside the evaluated split: a GCN computes every node of its graph, but a citation graph's accuracy
        counts only its test nodes (``gcn-cora``'s labels are -1 elsewhere)."""
        hw = np.asarray(hardware, dtype=np.float64)
        ref = np.asarray(reference, dtype=np.float64)
        metrics = cls(float(np.max(np.abs(hw - ref))), float(np.mean(np.abs(hw - ref))))
        if labels is not None and hw.ndim == 2 and len(labels) == len(hw):
            keep = np.asarray(labels) >= 0
            if not keep.any():
                return metrics
            y = np.asarray(labels)[keep]
            metrics.accuracy_float = float(np.mean(ref[keep].argmax(1) == y))
            if int_reference is not None:
                metrics.accuracy_int_reference = float(np.mean(np.asarray(int_reference)[keep].argmax(1) == y))
            metrics.accuracy_hardware = float(np.mean(hw[keep].argmax(1) == y))
        return metrics

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass
class CompileReport:
    """What ``hwforge compile`` learned: the options used and one row per layer (``reports/compile.json``)."""

    target: str
    config: dict[str, Any]
    layers: list[LayerRecord] = field(default_factory=list)
    passes: list[str] = field(default_factory=list)
    """The pass pipeline that ran, each pass with its parameters."""

    TABLES: ClassVar[tuple[str, ...]] = ("layers",)
    """List fields the CLI renders as tables."""

    def to_dict(self) -> dict[str, Any]:
        body = {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {"schema": SCHEMA, "kind": "compile", **body}

    def tables(self) -> list[tuple[str, list[dict[str, Any]]]]:
        return [(name, to_jsonable(getattr(self, name))) for name in self.TABLES if getattr(self, name)]


@dataclass
class VerifyResult:
    """What ``hwforge verify`` found (``reports/verify.json``). ``passed`` is False on any mismatch (exit 1)."""

    target: str
    passed: bool
    mismatches: int
    seed: int
    layers: list[LayerRecord] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    """Output name -> `OutputMetrics` (or a target's own comparison record)."""
    cycles: int | None = None
    """Total measured (or, for emulated devices, modelled) cycles of the run."""
    bound_cycles: int | None = None
    """The roofline prediction of the whole run, where the target has a cycle model."""
    wall_seconds: float | None = None

    SUMMARY: ClassVar[tuple[str, ...]] = ("cycles", "bound_cycles")
    """Scalar fields the CLI shows in its one-line hardware table."""

    def to_dict(self) -> dict[str, Any]:
        body = {f.name: to_jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}
        return {"schema": SCHEMA, "kind": "verify", **body}

    def summary(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.SUMMARY if getattr(self, k) is not None}
