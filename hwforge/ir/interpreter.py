"""Reference interpreter: runs any graph with the ops' PyTorch references. This is the golden model that
targets compare against, so it returns every intermediate value on request (`interpret_all`) for per-layer,
bit-exact comparison of integer graphs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from hwforge.errors import ConfigError, IRError
from hwforge.ir.graph import Graph, Node
from hwforge.ir.ops import EvalContext, get_op
from hwforge.ir.types import storage_torch_dtype


def _feeds(graph: Graph, inputs: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, torch.Tensor]:
    missing = [n for n in graph.inputs if n not in inputs]
    extra = sorted(set(inputs) - set(graph.inputs))
    if missing or extra:
        raise ConfigError(
            f"graph '{graph.name}' takes inputs {graph.inputs}; missing {missing}, unexpected {extra}"
        )
    feeds: dict[str, torch.Tensor] = {}
    for name in graph.inputs:
        value = inputs[name]
        t = value if isinstance(value, torch.Tensor) else torch.from_numpy(np.array(value, copy=True))
        want = graph[name].type
        if t.dim() != want.rank or tuple(t.shape[1:]) != want.shape[1:]:
            raise ConfigError(
                f"input '{name}' has shape {tuple(t.shape)}, graph expects {want} (any batch size)"
            )
        feeds[name] = t.detach().to(storage_torch_dtype(want.dtype))
    return feeds


Offload = Callable[[Node, list[torch.Tensor]], torch.Tensor]


def interpret_all(graph: Graph, inputs: Mapping[str, np.ndarray | torch.Tensor],
                  offload: Mapping[str, Offload] | None = None) -> dict[str, torch.Tensor]:
    """Value of every node (keyed by node name) for the given graph inputs.

    The leading (batch) dimension of the inputs may differ from the traced one. ``offload`` maps an op name to
    a function that computes that op's nodes instead of the reference (for example on simulated hardware),
    so a target can run part of a graph on its device and the rest in PyTorch, in one pass over the graph.
    """
    ctx = EvalContext(graph, _feeds(graph, inputs))
    values: dict[str, torch.Tensor] = {}
    offload = offload or {}
    with torch.no_grad():
        for node in graph.nodes():
            args = [values[i] for i in node.inputs]
            if node.op in offload:
                values[node.name] = offload[node.op](node, args)
                continue
            try:
                values[node.name] = get_op(node.op).reference(node, args, ctx)
            except (ValueError, RuntimeError) as e:
                msg = " ".join(str(e).split())
                raise IRError(f"node '{node.name}' ({node.op}): evaluation failed: {msg}") from None
    return values


def interpret(graph: Graph, inputs: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, torch.Tensor]:
    """Values of the graph outputs, keyed by output node name."""
    values = interpret_all(graph, inputs)
    return {name: values[name] for name in graph.outputs}
