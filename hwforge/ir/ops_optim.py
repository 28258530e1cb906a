"""Element-wise ops for optimizer updates (the ``smartupdate`` target): one op per float32 operation the
FPGA kernel performs, so that the IR interpreter is a bit-exact model of the generated C++.

Why these ops and not a fused ``adam`` op: the HLS emitter walks the graph and writes one C++ statement per
node, and every op here has exactly one IEEE-754 meaning (round to nearest even, float32 unless noted):

- ``fconst`` {value} -> f32[]: a compile-time hyperparameter (``value`` must be exactly a float32).
- ``ew_add``/``ew_sub``/``ew_mul``/``ew_div`` (a, b): one rounding; an operand may be a scalar f32[] input.
- ``ew_sqrt`` (a): correctly rounded square root (what ``sqrtf`` and ``hls::sqrtf`` compute).
- ``ew_fma`` (a, b, c): ``a*b + c`` rounded once. torch's AVX2/AVX-512 CPU kernels evaluate ``add(alpha=)``,
  ``lerp`` and ``addcmul`` with a fused multiply-add, so the lowering uses ``ew_fma`` exactly there.
- ``ew_select`` (flag f32[], a, b): ``flag != 0 ? a : b`` (SGD's first momentum step).
- ``ew_cast`` {dtype} (a): f16 <-> f32, round to nearest even (torch's ``.half()``).
- ``scatter`` (indices int32[k], values f32[k], like f32[n]) -> f32[n]: zeros, then ``out[idx] = value`` in
  index order (the last duplicate wins; indices outside [0, n) are ignored), i.e. top-k decompression.

Tensor operands are 1-D of one length ``n``; the interpreter accepts any ``n`` (it is the "batch" dimension),
so one graph describes the kernel for every vector length.
"""

from __future__ import annotations

import numpy as np
import torch

from hwforge.ir.graph import Graph, Node
from hwforge.ir.ops import EvalContext, OpDef, register_op, require_attr
from hwforge.ir.types import TensorType

ELEMENTWISE = ("ew_add", "ew_sub", "ew_mul", "ew_div", "ew_sqrt", "ew_fma", "ew_select", "ew_cast")


def _check_operands(in_types: list[TensorType], dtype: str = "f32") -> tuple[int, ...]:
    """All operands ``dtype``, 1-D vectors of one shape or scalars; returns the result shape."""
    vector_shapes = set()
    for i, t in enumerate(in_types):
        if t.dtype != dtype:
            raise ValueError(f"operand {i} must be {dtype}, got {t}")
        if t.rank == 1:
            vector_shapes.add(t.shape)
        elif t.rank != 0:
            raise ValueError(f"operand {i} must be a vector or a scalar, got {t}")
    if len(vector_shapes) > 1:
        raise ValueError(f"vector operands differ in length: {sorted(vector_shapes)}")
    return vector_shapes.pop() if vector_shapes else ()


def _verify_ew(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    _check_operands(in_types)


def _infer_ew(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType(_check_operands(in_types), "f32")


def _f32(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float32)


def fma_f32(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``a*b + c`` with one float32 rounding, computed exactly in float64 with round-to-odd.

    The product of two float32 values is exact in float64; the float64 sum is made round-to-odd (the inexact
    results with an even significand are moved one ulp towards the exact value), and a round-to-odd value with
    53 >= 24 + 2 bits rounds to float32 exactly as a single rounding would (Boldo and Melquiond).
    """
    p = (a.to(torch.float64) * b.to(torch.float64)).numpy()
    c64 = np.broadcast_to(c.to(torch.float64).numpy(), np.broadcast_shapes(p.shape, tuple(c.shape)))
    p = np.broadcast_to(p, c64.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        s = p + c64
        bp = s - c64
        err = (p - bp) + (c64 - (s - bp))  # TwoSum: s + err == p + c exactly (finite values)
        odd = (s.view(np.int64) & 1) == 1
        fix = np.isfinite(s) & (err != 0) & ~odd
        s = np.where(fix, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return torch.from_numpy(np.ascontiguousarray(s.astype(np.float32)))


def _ref_binary(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    a, b = (_f32(x) for x in args)
    return {"ew_add": torch.add, "ew_sub": torch.sub, "ew_mul": torch.mul, "ew_div": torch.div}[node.op](a, b)


def _ref_sqrt(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    # torch.sqrt on CPU may go through MKL and is not always correctly rounded; float64 sqrt rounded to
    # float32 is (53 >= 2*24 + 2), and it is what the kernel's sqrtf computes.
    return torch.sqrt(_f32(args[0]).to(torch.float64)).to(torch.float32)


def _ref_fma(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    return fma_f32(*(_f32(x) for x in args))


def _ref_select(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    flag, a, b = (_f32(x) for x in args)
    a, b = torch.broadcast_tensors(a, b)
    return (a if bool(flag.item() != 0) else b).clone()


def _verify_select(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    if in_types[0].rank != 0:
        raise ValueError(f"the flag must be a scalar f32[], got {in_types[0]}")
    _check_operands(in_types)


def _verify_fconst(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    value = require_attr(node, "value", float)
    if float(np.float32(value)) != float(value):
        raise ValueError(f"value {value!r} is not exactly representable as float32")
    if node.type.shape != () or node.type.dtype != "f32":
        raise ValueError(f"an fconst is a scalar f32[], got {node.type}")


def _ref_fconst(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    return torch.tensor(float(node.attrs["value"]), dtype=torch.float32)


def _verify_cast(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    to = require_attr(node, "dtype", str)
    src = in_types[0]
    if {src.dtype, to} != {"f16", "f32"}:
        raise ValueError(f"casts convert between f16 and f32, got {src.dtype} -> {to}")
    if src.rank > 1:
        raise ValueError(f"operand must be a vector or a scalar, got {src}")


def _infer_cast(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType(in_types[0].shape, str(node.attrs.get("dtype")))


def _ref_cast(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    return args[0].to(torch.float16 if node.attrs["dtype"] == "f16" else torch.float32)


def _verify_scatter(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    idx, val, like = in_types
    if idx.dtype != "int32" or idx.rank != 1:
        raise ValueError(f"indices must be int32[k], got {idx}")
    if val.dtype != "f32" or val.shape != idx.shape:
        raise ValueError(f"values must be f32{list(idx.shape)} like the indices, got {val}")
    if like.rank != 1 or like.dtype != "f32":
        raise ValueError(f"the shape operand must be an f32 vector, got {like}")


def _infer_scatter(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType(in_types[2].shape, "f32")


def _ref_scatter(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    idx = args[0].to(torch.int64)
    values = _f32(args[1])
    out = torch.zeros(args[2].shape, dtype=torch.float32)
    keep = (idx >= 0) & (idx < out.numel())
    idx, values = idx[keep], values[keep]
    # last duplicate wins, as in the kernel's sequential scatter: keep each index's last occurrence only
    order = torch.arange(idx.numel())
    last = torch.full((out.numel(),), -1, dtype=torch.int64).scatter_reduce(0, idx, order, reduce="amax")
    winners = last[last >= 0]
    out[idx[winners]] = values[winners]
    return out


_BIN_DOC = {"ew_add": "a + b", "ew_sub": "a - b", "ew_mul": "a * b", "ew_div": "a / b"}

for _name, _doc in _BIN_DOC.items():
    register_op(OpDef(_name, _verify_ew, _ref_binary, _infer_ew, 2, f"Element-wise float32 {_doc}."))
for _op in (
    OpDef("fconst", _verify_fconst, _ref_fconst, None, 0, "A float32 scalar constant (attrs.value)."),
    OpDef("ew_sqrt", _verify_ew, _ref_sqrt, _infer_ew, 1, "Correctly rounded float32 square root."),
    OpDef("ew_fma", _verify_ew, _ref_fma, _infer_ew, 3, "a*b + c with a single float32 rounding."),
    OpDef("ew_select", _verify_select, _ref_select, _infer_ew, 3, "flag != 0 ? a : b (flag a scalar)."),
    OpDef("ew_cast", _verify_cast, _ref_cast, _infer_cast, 1, "f16 <-> f32, round to nearest even."),
    OpDef("scatter", _verify_scatter, _ref_scatter, _infer_scatter, 3, "Top-k decompression into zeros."),
):
    register_op(_op)
