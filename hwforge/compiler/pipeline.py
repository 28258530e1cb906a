"""Run a list of passes: verify after each, time each, optionally dump the IR after each.

A pass that produces an invalid graph is reported by name ("after pass 'quantize': node 'fc1' (qlinear):
..."), which is the whole point of verifying every step rather than only at the end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwforge.compiler.passes import PASSES, Pass
from hwforge.errors import ConfigError, IRError
from hwforge.ir import Graph, graph_to_json, print_graph


@dataclass
class PipelineResult:
    graph: Graph
    timings: list[tuple[str, float]] = field(default_factory=list)


def _resolve(p: Pass | type | str) -> Pass:
    """Accept a pass object, a pass class or a registered pass name."""
    if isinstance(p, str):
        if p not in PASSES:
            raise ConfigError(f"unknown pass '{p}' (available: {', '.join(sorted(PASSES))})")
        p = PASSES[p]
    return p() if isinstance(p, type) else p


def _dump(dump_dir: Path, index: int, name: str, graph: Graph) -> None:
    stem = dump_dir / f"{index:02d}-{name}"
    stem.with_suffix(".txt").write_text(print_graph(graph), encoding="utf-8")
    stem.with_suffix(".json").write_text(graph_to_json(graph), encoding="utf-8")


def run_pipeline(
    graph: Graph,
    passes: Sequence[Pass | type | str],
    options: dict[str, Any] | None = None,
    dump_dir: str | os.PathLike | None = None,
) -> PipelineResult:
    """Apply ``passes`` in order (pass objects, classes or registered names).

    ``dump_dir`` gets ``00-input`` and ``NN-<pass>`` ``.txt`` (printer) and ``.json`` files. The input graph
    is left unchanged.
    """
    options = dict(options or {})
    resolved = [_resolve(p) for p in passes]
    try:
        graph.verify()
    except IRError as e:
        raise IRError(f"input graph: {e}") from None
    ddir = Path(dump_dir) if dump_dir is not None else None
    if ddir is not None:
        ddir.mkdir(parents=True, exist_ok=True)
        _dump(ddir, 0, "input", graph)
    timings: list[tuple[str, float]] = []
    current = graph
    for i, p in enumerate(resolved, start=1):
        t0 = time.perf_counter()
        try:
            result = p.run(current, options)
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
            _dump(ddir, i, p.name, result)
        current = result
    return PipelineResult(current, timings)
