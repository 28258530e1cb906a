"""Human-readable listing of a graph, one node a line (torch.fx / MLIR style), for ``hwforge inspect``.

    graph mlp-digits(%x: f32[32, 64]) -> (%output)
      %fc1 = qlinear(%x.q, %fc1.weight, %fc1.bias) {multiplier=..., relu=true} : int8[32, 64]
"""

from __future__ import annotations

import json
from typing import Any

from hwforge.ir.graph import Graph, Node


def format_value(value: Any) -> str:
    """Attribute values: JSON spelling (true/false/null, shortest float repr), short keys unquoted."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={format_value(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return json.dumps(value)


def format_node(node: Node) -> str:
    args = ", ".join(f"%{i}" for i in node.inputs)
    attrs = ""
    if node.attrs:
        attrs = " {" + ", ".join(f"{k}={format_value(v)}" for k, v in sorted(node.attrs.items())) + "}"
    annot = ""
    if node.type.quant:
        annot += f" quant{format_value(node.type.quant)}"
    if node.type.sparsity:
        annot += f" sparsity{format_value(node.type.sparsity)}"
    return f"%{node.name} = {node.op}({args}){attrs} : {node.type}{annot}"


def print_graph(graph: Graph) -> str:
    """The whole graph: a header with inputs and outputs, then every node in topological order."""
    ins = ", ".join(f"%{n}: {graph[n].type}" for n in graph.inputs)
    outs = ", ".join(f"%{n}" for n in graph.outputs)
    lines = [f"graph {graph.name}({ins}) -> ({outs}) {{"]
    lines += ["  " + format_node(n) for n in graph.nodes()]
    lines.append("}")
    return "\n".join(lines) + "\n"
