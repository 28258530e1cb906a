"""The op registry: what an op name means, how to check a node of it, and how to compute it.

Every op is an `OpDef`. Targets extend the IR by registering their own ops (graph aggregation for the GCN
targets, optimizer updates for ``smartupdate``) with `register_op`; nothing else in the IR needs to change,
because `Graph.verify`, the printer, JSON and the interpreter all dispatch through this registry.

Verifier contract: ``verify(node, in_types, graph)`` raises ``ValueError`` with a message that says what is
wrong ("weight shape (10, 32) does not match input features 64"); `verify_node` prefixes the node and op name
and raises `IRError`. ``infer_type(node, in_types)`` (optional) returns the output type; when present,
`verify_node` also checks that the node's declared type agrees (shape and dtype).

Reference contract: ``reference(node, args, ctx)`` computes the node's value with PyTorch from its input
values (``args``, in ``node.inputs`` order); ``ctx`` gives access to the graph (constants) and the graph
inputs being evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hwforge.errors import IRError
from hwforge.ir.graph import Graph, Node
from hwforge.ir.types import TensorType, parse_dtype


@dataclass
class EvalContext:
    """What a reference implementation may look at besides its arguments."""

    graph: Graph
    feeds: dict[str, torch.Tensor] = field(default_factory=dict)


Verifier = Callable[[Node, list[TensorType], Graph], None]
Reference = Callable[[Node, list[torch.Tensor], EvalContext], torch.Tensor]
TypeInference = Callable[[Node, list[TensorType]], TensorType]


@dataclass(frozen=True)
class OpDef:
    """Definition of one IR op (see the module docstring for the callable contracts)."""

    name: str
    verify: Verifier
    reference: Reference
    infer_type: TypeInference | None = None
    arity: int | tuple[int, int] | None = None
    """Number of inputs, or an inclusive ``(min, max)`` range; None means any (checked by verify_node)."""
    doc: str = ""


_REGISTRY: dict[str, OpDef] = {}


def register_op(opdef: OpDef, *, replace: bool = False) -> OpDef:
    """Add an op to the registry. Re-registering a name is an error unless ``replace`` (for tests)."""
    if opdef.name in _REGISTRY and not replace:
        raise ValueError(f"op '{opdef.name}' is already registered")
    _REGISTRY[opdef.name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise IRError(f"unknown op '{name}'") from None


def registered_ops() -> list[str]:
    return sorted(_REGISTRY)


def verify_node(graph: Graph, node: Node) -> None:
    """Run the generic checks and the op's verifier for one node; IRError names node and op."""
    prefix = f"node '{node.name}' ({node.op})"
    if node.op not in _REGISTRY:
        raise IRError(f"{prefix}: unknown op (registered: {', '.join(registered_ops())})")
    opdef = _REGISTRY[node.op]
    try:
        parse_dtype(node.type.dtype)
        for src in node.inputs:
            if src not in graph:
                raise ValueError(f"input '{src}' does not exist")
            if graph[src].op == "output":
                raise ValueError(f"input '{src}' is an output node, which has no users")
        n = len(node.inputs)
        if isinstance(opdef.arity, int) and n != opdef.arity:
            raise ValueError(f"expects {opdef.arity} input(s), got {n}")
        if isinstance(opdef.arity, tuple) and not opdef.arity[0] <= n <= opdef.arity[1]:
            raise ValueError(f"expects {opdef.arity[0]}..{opdef.arity[1]} inputs, got {n}")
        in_types = graph.input_types(node)
        opdef.verify(node, in_types, graph)
        if opdef.infer_type is not None:
            expected = opdef.infer_type(node, in_types)
            if not expected.same_value_type(node.type):
                raise ValueError(f"declared type {node.type} does not match inferred type {expected}")
    except ValueError as e:
        raise IRError(f"{prefix}: {e}") from None


def infer_type(node: Node, in_types: list[TensorType]) -> TensorType:
    """Output type of ``node`` from its op's type inference (ValueError when the op has none)."""
    opdef = get_op(node.op)
    if opdef.infer_type is None:
        raise ValueError(f"op '{node.op}' has no type inference")
    return opdef.infer_type(node, in_types)


# ----------------------------------------------------------------------------------- helpers for verifiers
def require_attr(node: Node, key: str, kinds: type | tuple[type, ...], *, optional: bool = False) -> Any:
    """Fetch attribute ``key`` and check its Python type (bool is never accepted as an int)."""
    if key not in node.attrs:
        if optional:
            return None
        raise ValueError(f"missing attribute '{key}'")
    value = node.attrs[key]
    kinds_t = kinds if isinstance(kinds, tuple) else (kinds,)
    if isinstance(value, bool) and bool not in kinds_t:
        raise ValueError(f"attribute '{key}' must be {_kind_names(kinds_t)}, got {value!r}")
    if float in kinds_t and isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, kinds_t):
        raise ValueError(f"attribute '{key}' must be {_kind_names(kinds_t)}, got {value!r}")
    return value


def require_int_pair(node: Node, key: str, default: list[int] | None = None, minimum: int = 0) -> list[int]:
    value = node.attrs.get(key, default)
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value)
    ):
        raise ValueError(f"attribute '{key}' must be a list of two integers >= {minimum}, got {value!r}")
    return value


def _kind_names(kinds: Sequence[type]) -> str:
    return " or ".join(k.__name__ for k in kinds)


def shape_str(shape: Sequence[int]) -> str:
    """Shapes in messages look like Python tuples: ``(10, 32)``."""
    return str(tuple(int(d) for d in shape))


def to_numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()
