"""Graph-convolution ops (issue 3): CSR aggregation, per-channel affine (folded BatchNorm) and their fixed-point
forms, plus the float <-> fixed conversions. Semantics follow docs/CONTRACTS.md, "Graph convolution".

Float ops
- ``spmm``(x f[N, F], indptr, indices, values[, bias f[F]]) attrs ``{relu?: bool}`` -> f[R, F] with
  ``R = len(indptr) - 1``: ``out[v] = sum_{e in row v} values[e] * x[indices[e]] (+ bias)``, then ReLU. The
  bias is an optional fifth input (not an attribute) so that it is a weight like any other and is converted by
  the same machinery as a linear layer's bias; ReLU is an attribute because hardware applies it in the
  requantiser, after the bias.
- ``affine``(x f[N, C], scale f[C], shift f[C]) attrs ``{relu?: bool}``: ``x * scale + shift`` per channel
  (last axis), the inference form of BatchNorm after folding its statistics.

Fixed-point ops (raw integers of ``fixed(Qi.f)`` dtypes; every op checks that its ``frac_*``/``out_bits``
attributes agree with its operand dtypes, so a target can read formats from either place)
- ``quantize_fixed``(x f32) ``{frac, bits}`` -> ``fixed(Q{bits-frac}.{frac})``: round half even, saturate.
- ``dequantize_fixed``(x fixed) ``{frac}`` -> f32.
- ``qmatmul_fixed``(x, weight const [M, K][, bias const]) ``{frac_in, frac_w, frac_out, out_bits, acc_bits, relu}``:
  ``requantize(wrap(x @ w.T + bias, acc_bits), 1, frac_in + frac_w - frac_out, relu, out_bits)``.
- ``qspmm``(x, indptr, indices, values fixed[E][, bias const]) ``{frac_in, frac_adj, frac_out, out_bits,
  acc_bits, relu}``: the CSR sum, then bias, wrap, requantise as above with ``frac_in + frac_adj``.
- ``qaffine``(x, scale const, shift const) ``{frac_in, frac_scale, frac_out, out_bits, acc_bits, relu}``.
- ``qadd_fixed``(a, b) ``{relu?}``: both operands (and the result) in one format; the exact sum is saturated
  to that format (a saturating adder, not a wrapping one: a residual stream that overflows should clip, as
  the float model would be clipped by the format, rather than flip sign).

Biases (and the affine shift) are fixed-point constants with exactly the accumulator's fraction bits
(``frac_in + frac_w`` etc.) and at most ``acc_bits`` bits, so they add straight into the accumulator.

CSR constants: ``indptr`` and ``indices`` are ``int32`` IR constants (the IR's widest integer dtype; the numpy
arrays from `hwforge.graphs.normalized_adjacency` are int64 and are narrowed when put into a graph).
"""

from __future__ import annotations

import numpy as np
import torch

from hwforge.ir import quant
from hwforge.ir.graph import Graph, Node
from hwforge.ir.ops import EvalContext, OpDef, register_op, require_attr, shape_str, to_numpy
from hwforge.ir.types import TensorType, is_float, parse_dtype, storage_torch_dtype


def fixed_dtype(bits: int, frac: int) -> str:
    """``fixed(Q{bits-frac}.{frac})``: the dtype of a ``bits``-wide value with ``frac`` fraction bits."""
    dtype = f"fixed(Q{bits - frac}.{frac})"
    parse_dtype(dtype)
    return dtype


def fixed_format(dtype: str) -> tuple[int, int]:
    """``(bits, frac)`` of a fixed-point dtype; ValueError for anything else."""
    kind, bits, frac = parse_dtype(dtype)
    if kind != "fixed":
        raise ValueError(f"expected a fixed(Qi.f) tensor, got {dtype}")
    return bits, frac


def _to_torch(values: np.ndarray, dtype: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values)).to(storage_torch_dtype(dtype))


def _int_attr(node: Node, key: str, lo: int, hi: int) -> int:
    v = require_attr(node, key, int)
    if not lo <= v <= hi:
        raise ValueError(f"attribute '{key}' must be in {lo}..{hi}, got {v}")
    return v


def _require_const(graph: Graph, node: Node, idx: int, what: str) -> np.ndarray:
    src = graph[node.inputs[idx]]
    if src.op != "constant":
        raise ValueError(f"{what} '{src.name}' must be a constant, got {src.op}")
    return graph.constant_value(src.name)


def _require_matrix(t: TensorType, what: str) -> None:
    if t.rank != 2:
        raise ValueError(f"{what} must be a matrix [N, F], got {t}")


# ------------------------------------------------------------------------------------------------- CSR
def _verify_csr(node: Node, in_types: list[TensorType], graph: Graph) -> int:
    """Check inputs 1..3 form a valid CSR over ``x``'s rows; returns the number of output rows."""
    x = in_types[0]
    _require_matrix(x, "input")
    indptr = _require_const(graph, node, 1, "indptr")
    indices = _require_const(graph, node, 2, "indices")
    _require_const(graph, node, 3, "values")
    for idx, what in ((1, "indptr"), (2, "indices")):
        if in_types[idx].dtype != "int32" or in_types[idx].rank != 1:
            raise ValueError(f"{what} must be int32[...], got {in_types[idx]}")
    if in_types[3].rank != 1 or in_types[3].shape[0] != indices.shape[0]:
        raise ValueError(f"values {in_types[3]} must have one entry per index ({indices.shape[0]})")
    if indptr.shape[0] < 1 or indptr[0] != 0 or indptr[-1] != indices.shape[0]:
        raise ValueError(f"indptr must start at 0 and end at {indices.shape[0]} (the edge count)")
    if np.any(np.diff(indptr.astype(np.int64)) < 0):
        raise ValueError("indptr must be non-decreasing")
    if indices.size and (indices.min() < 0 or indices.max() >= x.shape[0]):
        raise ValueError(f"indices [{indices.min()}, {indices.max()}] out of range for {x.shape[0]} input rows")
    return indptr.shape[0] - 1


def _verify_bias(t: TensorType, width: int, what: str = "bias") -> None:
    if t.shape != (width,):
        raise ValueError(f"{what} shape {shape_str(t.shape)} does not match {width} features")


def _infer_spmm(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType((in_types[1].shape[0] - 1, in_types[0].shape[1]), _out_dtype(node, in_types[0]))


def _out_dtype(node: Node, x: TensorType) -> str:
    if "out_bits" in node.attrs:
        return fixed_dtype(node.attrs["out_bits"], node.attrs["frac_out"])
    return x.dtype


def _verify_spmm(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    if not is_float(in_types[0].dtype) or not is_float(in_types[3].dtype):
        raise ValueError(f"input and values must be float, got {in_types[0].dtype} and {in_types[3].dtype}")
    _verify_csr(node, in_types, graph)
    if len(in_types) == 5:
        _verify_bias(in_types[4], in_types[0].shape[1])
        if in_types[4].dtype != in_types[0].dtype:
            raise ValueError(f"bias dtype {in_types[4].dtype} differs from input dtype {in_types[0].dtype}")
    require_attr(node, "relu", bool, optional=True)


def _ref_spmm(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    x, indptr, indices, values = args[:4]
    rows = torch.repeat_interleave(torch.arange(len(indptr) - 1), torch.diff(indptr.long()))
    msg = values.to(x.dtype)[:, None] * x[indices.long()]
    y = torch.zeros((len(indptr) - 1, x.shape[1]), dtype=x.dtype).index_add_(0, rows, msg)
    if len(args) == 5:
        y = y + args[4]
    return torch.relu(y) if node.attrs.get("relu", False) else y


# ---------------------------------------------------------------------------------------------- affine
def _verify_affine(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    x, scale, shift = in_types
    if not is_float(x.dtype):
        raise ValueError(f"input must be a float tensor, got {x.dtype}")
    _require_matrix(x, "input")
    _verify_bias(scale, x.shape[1], "scale")
    _verify_bias(shift, x.shape[1], "shift")
    if scale.dtype != x.dtype or shift.dtype != x.dtype:
        raise ValueError(f"mixed dtypes {[t.dtype for t in in_types]}")
    require_attr(node, "relu", bool, optional=True)


def _ref_affine(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    y = args[0] * args[1] + args[2]
    return torch.relu(y) if node.attrs.get("relu", False) else y


# ------------------------------------------------------------------------------------- float <-> fixed
def _verify_quantize_fixed(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    if not is_float(in_types[0].dtype):
        raise ValueError(f"input must be a float tensor, got {in_types[0].dtype}")
    bits = _int_attr(node, "bits", 2, 32)
    _int_attr(node, "frac", 0, bits - 1)


def _infer_quantize_fixed(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType(in_types[0].shape, fixed_dtype(node.attrs["bits"], node.attrs["frac"]))


def _ref_quantize_fixed(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    q = quant.to_fixed(to_numpy(args[0].float()), node.attrs["frac"], node.attrs["bits"])
    return _to_torch(q, node.type.dtype)


def _verify_dequantize_fixed(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    _, frac = fixed_format(in_types[0].dtype)
    if _int_attr(node, "frac", 0, 31) != frac:
        raise ValueError(f"attribute 'frac' = {node.attrs['frac']} does not match input {in_types[0].dtype}")


def _infer_dequantize_fixed(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType(in_types[0].shape, "f32")


def _ref_dequantize_fixed(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    return torch.from_numpy(quant.from_fixed(to_numpy(args[0]), node.attrs["frac"]))


# ------------------------------------------------------------------------------------ fixed-point compute
def _verify_requant(node: Node, x: TensorType, other: TensorType, other_key: str) -> int:
    """Check the shared attrs of a fixed-point op against its operand formats; returns the accumulator's
    fraction bits."""
    _, fx = fixed_format(x.dtype)
    _, fo = fixed_format(other.dtype)
    for key, want in (("frac_in", fx), (other_key, fo)):
        if _int_attr(node, key, 0, 31) != want:
            raise ValueError(f"attribute '{key}' = {node.attrs[key]} does not match operand format (frac {want})")
    out_bits = _int_attr(node, "out_bits", 2, 32)
    _int_attr(node, "frac_out", 0, out_bits - 1)
    _int_attr(node, "acc_bits", 2, 64)
    require_attr(node, "relu", bool)
    quant.fixed_shift(fx + fo, node.attrs["frac_out"])
    return fx + fo


def _verify_acc_const(t: TensorType, width: int, frac_acc: int, acc_bits: int, what: str) -> None:
    """A bias/shift constant: fixed, one per channel, exactly the accumulator's fraction bits."""
    _verify_bias(t, width, what)
    bits, frac = fixed_format(t.dtype)
    if frac != frac_acc or bits > acc_bits:
        raise ValueError(
            f"{what} must be fixed with {frac_acc} fraction bits and at most {acc_bits} bits (the accumulator), "
            f"got {t.dtype}"
        )


def _shift(node: Node, frac_key: str) -> int:
    a = node.attrs
    return quant.fixed_shift(a["frac_in"] + a[frac_key], a["frac_out"])


def _verify_qmatmul_fixed(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    x, w = in_types[0], in_types[1]
    _require_matrix(x, "input")
    _require_const(graph, node, 1, "weight")
    if w.rank != 2 or w.shape[1] != x.shape[1]:
        raise ValueError(f"weight {w} does not match input features {x.shape[1]} (expects [M, K])")
    frac_acc = _verify_requant(node, x, w, "frac_w")
    if len(in_types) == 3:
        _require_const(graph, node, 2, "bias")
        _verify_acc_const(in_types[2], w.shape[0], frac_acc, node.attrs["acc_bits"], "bias")


def _infer_qmatmul_fixed(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType((in_types[0].shape[0], in_types[1].shape[0]), _out_dtype(node, in_types[0]))


def _ref_qmatmul_fixed(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    a = node.attrs
    x, w = to_numpy(args[0]), to_numpy(args[1])
    bias = to_numpy(args[2]) if len(args) == 3 else None
    y = quant.qmatmul_fixed_int(x, w, bias, _shift(node, "frac_w"), a["relu"], a["acc_bits"], a["out_bits"])
    return _to_torch(y, node.type.dtype)


def _verify_qspmm(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    _verify_csr(node, in_types, graph)
    frac_acc = _verify_requant(node, in_types[0], in_types[3], "frac_adj")
    if len(in_types) == 5:
        _require_const(graph, node, 4, "bias")
        _verify_acc_const(in_types[4], in_types[0].shape[1], frac_acc, node.attrs["acc_bits"], "bias")


def _ref_qspmm(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    a = node.attrs
    x, indptr, indices, values = (to_numpy(t) for t in args[:4])
    bias = to_numpy(args[4]) if len(args) == 5 else None
    y = quant.qspmm_int(x, indptr, indices, values, bias, _shift(node, "frac_adj"), a["relu"], a["acc_bits"],
                        a["out_bits"])
    return _to_torch(y, node.type.dtype)


def _verify_qaffine(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    x, scale, shift = in_types
    _require_matrix(x, "input")
    _require_const(graph, node, 1, "scale")
    _require_const(graph, node, 2, "shift")
    _verify_bias(scale, x.shape[1], "scale")
    frac_acc = _verify_requant(node, x, scale, "frac_scale")
    _verify_acc_const(shift, x.shape[1], frac_acc, node.attrs["acc_bits"], "shift")


def _infer_same_shape(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType(in_types[0].shape, _out_dtype(node, in_types[0]))


def _ref_qaffine(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    a = node.attrs
    x, scale, shift = (to_numpy(t) for t in args)
    y = quant.qaffine_int(x, scale, shift, _shift(node, "frac_scale"), a["relu"], a["acc_bits"], a["out_bits"])
    return _to_torch(y, node.type.dtype)


def _verify_qadd_fixed(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    a, b = in_types
    fixed_format(a.dtype)
    if a.dtype != b.dtype or a.shape != b.shape:
        raise ValueError(f"operands must have one shape and fixed format, got {a} and {b}")
    require_attr(node, "relu", bool, optional=True)


def _ref_qadd_fixed(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    bits, _ = fixed_format(node.type.dtype)
    y = quant.qadd_sat_int(to_numpy(args[0]), to_numpy(args[1]), node.attrs.get("relu", False), bits)
    return _to_torch(y, node.type.dtype)


def _same_as_first(node: Node, in_types: list[TensorType]) -> TensorType:
    return in_types[0]


for _op in (
    OpDef("spmm", _verify_spmm, _ref_spmm, _infer_spmm, (4, 5), "CSR aggregation A @ x (+ bias), optional relu."),
    OpDef("affine", _verify_affine, _ref_affine, _same_as_first, 3, "x * scale + shift per channel, optional relu."),
    OpDef("quantize_fixed", _verify_quantize_fixed, _ref_quantize_fixed, _infer_quantize_fixed, 1,
          "float -> fixed(Qi.f), round half even, saturate."),
    OpDef("dequantize_fixed", _verify_dequantize_fixed, _ref_dequantize_fixed, _infer_dequantize_fixed, 1,
          "fixed -> f32."),
    OpDef("qmatmul_fixed", _verify_qmatmul_fixed, _ref_qmatmul_fixed, _infer_qmatmul_fixed, (2, 3),
          "Fixed-point x @ w.T (+ bias), requantise."),
    OpDef("qspmm", _verify_qspmm, _ref_qspmm, _infer_spmm, (4, 5), "Fixed-point CSR aggregation (+ bias), requantise."),
    OpDef("qaffine", _verify_qaffine, _ref_qaffine, _infer_same_shape, 3, "Fixed-point per-channel affine."),
    OpDef("qadd_fixed", _verify_qadd_fixed, _ref_qadd_fixed, _same_as_first, 2, "Saturating fixed-point add."),
):
    register_op(_op)
