"""Run a list of passes: verify after each, time each, optionally dump the IR after each.

A pass that produces an invalid graph is reported by name ("after pass 'quantize': node 'fc1' (qlinear):
..."), which is the whole point of verifying every step rather than only at the end.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hwforge.compiler.passes import PASSES, Calibration, Pass
from hwforge.errors import ConfigError, IRError
from hwforge.ir import Graph, graph_to_json, print_graph


@dataclass
class PipelineResult:
    graph: Graph
    timings: list[tuple[str, float]] = field(default_factory=list)
    passes: list[str] = field(default_factory=list)
    """Every pass that ran, with its parameters (`describe_pass`)."""


def _resolve(p: Pass | type | str) -> Pass:
    """Accept a pass object, a pass class or a registered pass name."""
    if isinstance(p, str):
        if p not in PASSES:
            raise ConfigError(f"unknown pass '{p}' (available: {', '.join(sorted(PASSES))})")
        p = PASSES[p]
    return p() if isinstance(p, type) else p


def describe_pass(p: Pass) -> str:
    """``quantize(bits=8, acc_bits=32)``: the pass and its parameters, as dumps and reports show it."""
    params = [f"{f.name}={getattr(p, f.name)!r}" for f in dataclasses.fields(p)] if dataclasses.is_dataclass(p) else []
    return f"{p.name}({', '.join(params)})"


def _dump(dump_dir: Path, index: int, p: Pass | None, graph: Graph) -> None:
    name = "input" if p is None else p.name
    stem = dump_dir / f"{index:02d}-{name}"
    header = "# input graph\n" if p is None else f"# after {describe_pass(p)}\n"
    stem.with_suffix(".txt").write_text(header + print_graph(graph), encoding="utf-8")
    stem.with_suffix(".json").write_text(graph_to_json(graph), encoding="utf-8")


def run_pipeline(
    graph: Graph,
    passes: Sequence[Pass | type | str],
    calibration: Calibration | None = None,
    dump_dir: str | os.PathLike | None = None,
) -> PipelineResult:
    """Apply ``passes`` in order (pass objects, classes or registered names, the latter two built with their
    default parameters); ``calibration`` goes to every pass (those that calibrate need it).

    ``dump_dir`` gets ``00-input`` and ``NN-<pass>`` ``.txt`` (printer) and ``.json`` files. The input graph
    is left unchanged.
    """
    if calibration is not None and not isinstance(calibration, Calibration):
        raise TypeError(f"calibration must be a Calibration, not {type(calibration).__name__}")
    resolved = [_resolve(p) for p in passes]
    try:
        graph.verify()
    except IRError as e:
        raise IRError(f"input graph: {e}") from None
    ddir = Path(dump_dir) if dump_dir is not None else None
    if ddir is not None:
        ddir.mkdir(parents=True, exist_ok=True)
        _dump(ddir, 0, None, graph)
    timings: list[tuple[str, float]] = []
    current = graph
    for i, p in enumerate(resolved, start=1):
        t0 = time.perf_counter()
        try:
            result = p.run(current, calibration)
        except IRError as e:
            raise IRError(f"in pass '{p.name}': {e}") from None
        timings.append((p.name, time.perf_counter() - t0))
        if not isinstance(result, Graph):
            raise IRError(f"pass '{p.name}' returned {type(result).__name__}, not a Graph")
        try:
            result.verify()
        except IRError as e:
            raise IRError(f"after pass '{p.name}': {e}") from None
        if ddir is not None:
            _dump(ddir, i, p, result)
        current = result
    return PipelineResult(current, timings, [describe_pass(p) for p in resolved])
