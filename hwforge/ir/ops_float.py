"""Built-in structural and float ops: input, constant, output, linear, conv2d, relu, add, flatten, reshape,
plus identity and dropout (which the frontend or ``canonicalize`` removes).

``linear`` and ``conv2d`` accept an optional ``relu: bool`` attribute set by the ``fuse_relu`` pass: fusing
before quantisation means the output scale is calibrated on the post-ReLU range, which is what the integer
requantiser (ReLU then saturate) produces.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hwforge.ir.graph import Graph, Node
from hwforge.ir.ops import EvalContext, OpDef, register_op, require_attr, require_int_pair, shape_str
from hwforge.ir.types import TensorType, is_float, storage_numpy_dtype, storage_torch_dtype, value_range


def _nothing(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    return None


def _same_as_first(node: Node, in_types: list[TensorType]) -> TensorType:
    return in_types[0]


def _require_float(node: Node, t: TensorType, what: str) -> None:
    if not is_float(t.dtype):
        raise ValueError(f"{what} must be a float tensor, got {t.dtype}")


# ------------------------------------------------------------------------------------------- input/output
def _ref_input(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    if node.name not in ctx.feeds:
        raise ValueError(f"no value given for graph input '{node.name}'")
    return ctx.feeds[node.name].to(storage_torch_dtype(node.type.dtype))


def _verify_constant(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    key = require_attr(node, "key", str)
    if key not in graph.constants:
        raise ValueError(f"constant key '{key}' has no array in graph.constants")
    arr = graph.constants[key]
    if tuple(arr.shape) != node.type.shape:
        raise ValueError(f"array shape {shape_str(arr.shape)} does not match type {node.type}")
    want = storage_numpy_dtype(node.type.dtype)
    if arr.dtype != want:
        raise ValueError(f"array dtype {arr.dtype} does not match {node.type.dtype} (stored as {want})")
    rng = value_range(node.type.dtype)
    if rng is not None and arr.size and (arr.min() < rng[0] or arr.max() > rng[1]):
        raise ValueError(f"values [{arr.min()}, {arr.max()}] do not fit {node.type.dtype}")


def _ref_constant(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    return torch.from_numpy(np.array(ctx.graph.constants[node.attrs["key"]], copy=True))


def _verify_output(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    if not node.type.same_value_type(in_types[0]):
        raise ValueError(f"type {node.type} differs from its input's type {in_types[0]}")


def _ref_identity(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    return args[0]


# ------------------------------------------------------------------------------------------------- linear
def _verify_linear(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    x, w = in_types[0], in_types[1]
    _require_float(node, x, "input")
    if x.rank < 1 or w.rank != 2:
        raise ValueError(f"expects input [..., K] and weight [N, K], got {x} and {w}")
    if w.shape[1] != x.shape[-1]:
        raise ValueError(f"weight shape {shape_str(w.shape)} does not match input features {x.shape[-1]}")
    if len(in_types) == 3 and in_types[2].shape != (w.shape[0],):
        raise ValueError(f"bias shape {shape_str(in_types[2].shape)} does not match {w.shape[0]} outputs")
    if any(t.dtype != x.dtype for t in in_types):
        raise ValueError(f"mixed dtypes {[t.dtype for t in in_types]}")
    require_attr(node, "relu", bool, optional=True)


def _infer_linear(node: Node, in_types: list[TensorType]) -> TensorType:
    x, w = in_types[0], in_types[1]
    return TensorType(x.shape[:-1] + (w.shape[0],), x.dtype)


def _ref_linear(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    y = F.linear(args[0], args[1], args[2] if len(args) > 2 else None)
    return torch.relu(y) if node.attrs.get("relu", False) else y


# ------------------------------------------------------------------------------------------------- conv2d
def conv_out_hw(h: int, w: int, k: tuple[int, int], stride, padding, dilation=(1, 1)) -> tuple[int, int]:
    """Output height and width of a 2-D convolution (torch's formula)."""
    oh = (h + 2 * padding[0] - dilation[0] * (k[0] - 1) - 1) // stride[0] + 1
    ow = (w + 2 * padding[1] - dilation[1] * (k[1] - 1) - 1) // stride[1] + 1
    return oh, ow


def _verify_conv2d(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    x, w = in_types[0], in_types[1]
    _require_float(node, x, "input")
    if x.rank != 4 or w.rank != 4:
        raise ValueError(f"expects NCHW input and OCkhkw weight, got {x} and {w}")
    require_int_pair(node, "stride", minimum=1)
    require_int_pair(node, "padding")
    require_int_pair(node, "dilation", [1, 1], minimum=1)
    groups = node.attrs.get("groups", 1)
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"attribute 'groups' must be a positive integer, got {groups!r}")
    if w.shape[1] * groups != x.shape[1] or w.shape[0] % groups:
        raise ValueError(
            f"weight shape {shape_str(w.shape)} does not match {x.shape[1]} input channels (groups={groups})"
        )
    if len(in_types) == 3 and in_types[2].shape != (w.shape[0],):
        raise ValueError(f"bias shape {shape_str(in_types[2].shape)} does not match {w.shape[0]} channels")
    if any(t.dtype != x.dtype for t in in_types):
        raise ValueError(f"mixed dtypes {[t.dtype for t in in_types]}")
    require_attr(node, "relu", bool, optional=True)
    oh, ow = _conv_hw(node, x, w)
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel {shape_str(w.shape[2:])} does not fit input {x}")


def _conv_hw(node: Node, x: TensorType, w: TensorType) -> tuple[int, int]:
    return conv_out_hw(
        x.shape[2], x.shape[3], w.shape[2:], node.attrs["stride"], node.attrs["padding"],
        node.attrs.get("dilation", [1, 1]),
    )


def _infer_conv2d(node: Node, in_types: list[TensorType]) -> TensorType:
    x, w = in_types[0], in_types[1]
    oh, ow = _conv_hw(node, x, w)
    return TensorType((x.shape[0], w.shape[0], oh, ow), x.dtype)


def _ref_conv2d(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    a = node.attrs
    y = F.conv2d(
        args[0], args[1], args[2] if len(args) > 2 else None, stride=tuple(a["stride"]),
        padding=tuple(a["padding"]), dilation=tuple(a.get("dilation", [1, 1])), groups=a.get("groups", 1),
    )
    return torch.relu(y) if a.get("relu", False) else y


# -------------------------------------------------------------------------------------- relu, add, shapes
def _ref_relu(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    return torch.clamp_min(args[0], 0)  # works for every dtype, keeps integer dtypes


def _verify_add(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    a, b = in_types
    if a.dtype != b.dtype:
        raise ValueError(f"operand dtypes differ: {a.dtype} and {b.dtype}")
    _require_float(node, a, "operands")
    _infer_add(node, in_types)


def _infer_add(node: Node, in_types: list[TensorType]) -> TensorType:
    a, b = in_types
    try:
        shape = torch.broadcast_shapes(a.shape, b.shape)
    except RuntimeError:
        raise ValueError(f"shapes {shape_str(a.shape)} and {shape_str(b.shape)} do not broadcast") from None
    return TensorType(tuple(shape), a.dtype)


def _ref_add(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    return args[0] + args[1]


def _flatten_dims(node: Node, rank: int) -> tuple[int, int]:
    start = require_attr(node, "start_dim", int)
    end = node.attrs.get("end_dim", -1)
    if not isinstance(end, int) or isinstance(end, bool):
        raise ValueError(f"attribute 'end_dim' must be an integer, got {end!r}")
    if rank == 0:
        return 0, 0
    if not (-rank <= start < rank and -rank <= end < rank) or start % rank > end % rank:
        raise ValueError(f"start_dim={start}, end_dim={end} invalid for rank {rank}")
    s, e = start % rank, end % rank
    return s, e


def _verify_flatten(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    _flatten_dims(node, in_types[0].rank)


def _infer_flatten(node: Node, in_types: list[TensorType]) -> TensorType:
    x = in_types[0]
    if x.rank == 0:
        return x.with_(shape=(1,), sparsity=None)
    s, e = _flatten_dims(node, x.rank)
    merged = int(np.prod(x.shape[s : e + 1], dtype=np.int64))
    return x.with_(shape=x.shape[:s] + (merged,) + x.shape[e + 1 :], sparsity=None)


def _ref_flatten(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    return torch.flatten(args[0], node.attrs["start_dim"], node.attrs.get("end_dim", -1))


def resolve_shape(shape: list[int], numel: int) -> tuple[int, ...]:
    """Replace one ``-1`` the way torch.reshape does (ValueError when impossible)."""
    if sum(1 for d in shape if d == -1) > 1 or any(d < -1 for d in shape):
        raise ValueError(f"shape {shape} may contain at most one -1 and no other negative entries")
    known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
    if -1 in shape:
        if known == 0 or numel % known:
            raise ValueError(f"cannot reshape {numel} elements into {shape}")
        return tuple(numel // known if d == -1 else d for d in shape)
    if known != numel:
        raise ValueError(f"cannot reshape {numel} elements into {shape}")
    return tuple(shape)


def _verify_reshape(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    shape = require_attr(node, "shape", list)
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise ValueError(f"attribute 'shape' must be a list of integers, got {shape!r}")
    resolve_shape(shape, in_types[0].numel)


def _infer_reshape(node: Node, in_types: list[TensorType]) -> TensorType:
    x = in_types[0]
    return x.with_(shape=resolve_shape(node.attrs["shape"], x.numel), sparsity=None)


def _ref_reshape(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    # -1 lets the leading (batch) dimension differ from the one the graph was traced with.
    return torch.reshape(args[0], tuple(node.attrs["shape"]))


for _op in (
    OpDef("input", _nothing, _ref_input, None, 0, "A graph input; its value comes from the caller."),
    OpDef("constant", _verify_constant, _ref_constant, None, 0, "graph.constants[attrs.key]."),
    OpDef("output", _verify_output, _ref_identity, _same_as_first, 1, "A graph output."),
    OpDef("linear", _verify_linear, _ref_linear, _infer_linear, (2, 3), "x @ w.T + b, optional relu."),
    OpDef("conv2d", _verify_conv2d, _ref_conv2d, _infer_conv2d, (2, 3), "NCHW convolution, optional relu."),
    OpDef("relu", _nothing, _ref_relu, _same_as_first, 1, "max(x, 0), any dtype."),
    OpDef("add", _verify_add, _ref_add, _infer_add, 2, "Broadcasting float addition."),
    OpDef("flatten", _verify_flatten, _ref_flatten, _infer_flatten, 1, "torch.flatten, any dtype."),
    OpDef("reshape", _verify_reshape, _ref_reshape, _infer_reshape, 1, "torch.reshape, any dtype."),
    OpDef("identity", _nothing, _ref_identity, _same_as_first, 1, "No-op (removed by canonicalize)."),
    OpDef("dropout", _nothing, _ref_identity, _same_as_first, 1, "Inference dropout = identity."),
):
    register_op(_op)
