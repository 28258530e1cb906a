"""Lossless, deterministic JSON form of a graph, with weights as ``.npy`` files beside it (never pickle).

``ir.json`` layout (``"schema": 1``)::

    {"schema": 1, "name": ..., "inputs": [...], "outputs": [...],
     "nodes": [{"name", "op", "inputs", "attrs", "type": {"shape", "dtype", "quant"?, "sparsity"?}}, ...],
     "constants": {key: {"shape": [...], "dtype": numpy dtype name}}}

Nodes are written in `Graph.nodes` order and keys are sorted, so equal graphs give byte-equal text. Floats
use Python's shortest round-tripping repr, so attributes come back bit-identical.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from hwforge.errors import ConfigError, IRError
from hwforge.ir.graph import Graph, Node
from hwforge.ir.types import TensorType

SCHEMA = 1
_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def graph_to_dict(graph: Graph) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "name": graph.name,
        "inputs": list(graph.inputs),
        "outputs": list(graph.outputs),
        "nodes": [
            {"name": n.name, "op": n.op, "inputs": list(n.inputs), "attrs": n.attrs, "type": n.type.to_json()}
            for n in graph.nodes()
        ],
        "constants": {
            k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in sorted(graph.constants.items())
        },
    }


def graph_to_json(graph: Graph) -> str:
    """Deterministic JSON text (sorted keys, topological node order, trailing newline)."""
    return json.dumps(graph_to_dict(graph), sort_keys=True, indent=1, allow_nan=False) + "\n"


def graph_from_json(text: str, weights: dict[str, np.ndarray]) -> Graph:
    """Rebuild a graph from `graph_to_json` text and its constant arrays; IRError/ConfigError if malformed."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"IR file is not valid JSON: {_one_line(e)}") from None
    return graph_from_dict(data, weights)


def graph_from_dict(data: Any, weights: dict[str, np.ndarray]) -> Graph:
    if not isinstance(data, dict) or "schema" not in data:
        raise ConfigError("IR file has no 'schema' field: not an hwforge graph")
    if data["schema"] != SCHEMA:
        raise ConfigError(f"IR schema {data['schema']!r} is not supported (this hwforge reads schema {SCHEMA})")
    try:
        graph = Graph(str(data["name"]))
        for nd in data["nodes"]:
            if not isinstance(nd, dict):
                raise ValueError(f"node entry must be an object, got {nd!r}")
            node = Node(str(nd["name"]), str(nd["op"]), list(nd["inputs"]), dict(nd["attrs"]),
                        TensorType.from_json(nd["type"]))
            graph.add_node(node)
        table = data["constants"]
        if not isinstance(table, dict):
            raise ValueError("'constants' must be an object")
        for key, spec in table.items():
            if key not in weights:
                raise ValueError(f"constant '{key}' has no weight array")
            arr = np.asarray(weights[key])
            if list(arr.shape) != spec["shape"] or arr.dtype.name != spec["dtype"]:
                raise ValueError(
                    f"constant '{key}' is {arr.dtype.name}{list(arr.shape)}, "
                    f"expected {spec['dtype']}{spec['shape']}"
                )
            graph.constants[key] = arr
        if list(data["inputs"]) != graph.inputs or list(data["outputs"]) != graph.outputs:
            # inputs/outputs are in declaration order; node order is topological, so restore it explicitly
            if sorted(data["inputs"]) != sorted(graph.inputs) or sorted(data["outputs"]) != sorted(graph.outputs):
                raise ValueError("'inputs'/'outputs' do not match the input/output nodes")
            graph.inputs = list(data["inputs"])
            graph.outputs = list(data["outputs"])
    except IRError as e:
        raise IRError(f"malformed IR: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        what = f"missing field {e}" if isinstance(e, KeyError) else _one_line(e)
        raise IRError(f"malformed IR: {what}") from None
    return graph


def save_graph(graph: Graph, directory: str | os.PathLike) -> Path:
    """Write ``ir.json`` and ``weights/<key>.npy`` into ``directory`` (created if needed)."""
    d = Path(directory)
    (d / "weights").mkdir(parents=True, exist_ok=True)
    for key, arr in sorted(graph.constants.items()):
        if not _KEY_RE.match(key):
            raise IRError(f"constant key {key!r} cannot be used as a file name")
        np.save(d / "weights" / f"{key}.npy", np.ascontiguousarray(arr), allow_pickle=False)
    (d / "ir.json").write_text(graph_to_json(graph), encoding="utf-8")
    return d


def load_graph(directory: str | os.PathLike) -> Graph:
    """Read a graph written by `save_graph` (``np.load(allow_pickle=False)``)."""
    d = Path(directory)
    path = d / "ir.json"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {_one_line(e)}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {_one_line(e)}") from None
    weights: dict[str, np.ndarray] = {}
    table = data.get("constants", {}) if isinstance(data, dict) else {}
    if isinstance(table, dict) and isinstance(data, dict) and data.get("schema") == SCHEMA:
        for key in table:
            if not isinstance(key, str) or not _KEY_RE.match(key):
                raise IRError(f"malformed IR: constant key {key!r} is not a valid file name")
            wpath = d / "weights" / f"{key}.npy"
            try:
                weights[key] = np.load(wpath, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise ConfigError(f"cannot load weight {wpath}: {_one_line(e)}") from None
    return graph_from_dict(data, weights)
