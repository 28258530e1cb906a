"""The hwforge graph IR: types, nodes and graphs, the op registry, JSON, printer and reference interpreter.

Extending the IR (targets do this for graph aggregation, optimizer updates, ...): define the op's verifier,
PyTorch reference and (optionally) type inference and register them::

    from hwforge.ir import OpDef, register_op, TensorType

    def verify(node, in_types, graph):          # raise ValueError("what is wrong"); the IR adds node/op
        if in_types[0].rank != 2: raise ValueError(f"expects a matrix, got {in_types[0]}")

    def reference(node, args, ctx):             # PyTorch golden model; ctx.graph gives the constants
        return args[0] @ args[1]

    register_op(OpDef("aggregate", verify, reference,
                      infer_type=lambda node, ts: TensorType((ts[0].shape[0], ts[1].shape[1]), ts[1].dtype),
                      arity=2))

`Graph.verify`, `print_graph`, `graph_to_json` and `interpret` then handle the new op with no other change.
Register at import time of the target's package, before graphs using the op are loaded.
"""

from hwforge.ir import ops_float as _ops_float  # noqa: F401  (registers the built-in ops)
from hwforge.ir import ops_lowbit as _ops_lowbit  # noqa: F401  (low-bit ops of the localut target)
from hwforge.ir import ops_optim as _ops_optim  # noqa: F401  (element-wise optimizer-update ops)
from hwforge.ir import ops_quant as _ops_quant  # noqa: F401
from hwforge.ir.graph import Graph, Node
from hwforge.ir.interpreter import interpret, interpret_all
from hwforge.ir.ops import EvalContext, OpDef, get_op, infer_type, register_op, registered_ops
from hwforge.ir.ops_graph import fixed_dtype, fixed_format  # (importing registers the graph ops)
from hwforge.ir.optim_lowering import lower_optimizer
from hwforge.ir.optim_spec import OptimizerSpec
from hwforge.ir.printer import format_node, print_graph
from hwforge.ir.serialize import SCHEMA, graph_from_json, graph_to_json, load_graph, save_graph
from hwforge.ir.types import (
    TensorType,
    dtype_bits,
    int_dtype,
    is_float,
    is_int,
    parse_dtype,
    storage_numpy_dtype,
    storage_torch_dtype,
)

__all__ = [
    "SCHEMA",
    "EvalContext",
    "Graph",
    "Node",
    "OpDef",
    "OptimizerSpec",
    "TensorType",
    "dtype_bits",
    "fixed_dtype",
    "fixed_format",
    "format_node",
    "get_op",
    "graph_from_json",
    "graph_to_json",
    "infer_type",
    "int_dtype",
    "interpret",
    "interpret_all",
    "is_float",
    "is_int",
    "load_graph",
    "lower_optimizer",
    "parse_dtype",
    "print_graph",
    "register_op",
    "registered_ops",
    "save_graph",
    "storage_numpy_dtype",
    "storage_torch_dtype",
]
