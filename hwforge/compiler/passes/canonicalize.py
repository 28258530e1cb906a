"""``canonicalize``: remove what does not compute, so later passes and targets see fewer op patterns.

- ``identity``/``dropout`` nodes disappear (inference dropout is the identity).
- A reshape/flatten whose output shape equals its input shape disappears.
- ``reshape(reshape|flatten(x))`` becomes ``reshape(x)``: only the final shape matters.
- ``flatten`` is kept as is (it is batch-size independent and targets pattern-match it directly).
- Dead nodes and unused constants are removed.
"""

from __future__ import annotations

from hwforge.compiler.passes.base import Calibration, register_pass
from hwforge.ir import Graph
from hwforge.ir.graph import Node

_NOOPS = ("identity", "dropout")
_SHAPES = ("reshape", "flatten")


@register_pass
class Canonicalize:
    name = "canonicalize"

    def run(self, graph: Graph, calibration: Calibration | None = None) -> Graph:
        g = graph.copy()
        for node in g.nodes():
            if node.op in _NOOPS or (node.op in _SHAPES and node.type.shape == g[node.inputs[0]].type.shape):
                g.replace_uses(node.name, node.inputs[0])
                g.remove_node(node.name)
        for node in g.nodes():
            if node.op == "reshape" and g[node.inputs[0]].op in _SHAPES:
                src = g[node.inputs[0]].inputs[0]
                g.replace_node(node.name, Node(node.name, "reshape", [src], dict(node.attrs), node.type, node.meta))
        g.eliminate_dead_code()
        return g
