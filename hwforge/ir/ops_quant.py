"""Built-in quantised ops: quantize, dequantize, qlinear, qconv2d (integer semantics of docs/CONTRACTS.md).

References compute in numpy int64 through `hwforge.ir.quant` (exact: integer matmul never goes through a
float BLAS) and hand back tensors in the dtype's host container. The scales in the attributes are
informational for the integer ops (only multiplier/shift matter); they let targets and reports relate
integer values to real ones.
"""

from __future__ import annotations

import numpy as np
import torch

from hwforge.ir import quant
from hwforge.ir.graph import Graph, Node
from hwforge.ir.ops import EvalContext, OpDef, register_op, require_attr, require_int_pair, shape_str, to_numpy
from hwforge.ir.ops_float import conv_out_hw
from hwforge.ir.types import TensorType, int_dtype, is_float, is_int, storage_torch_dtype


def _positive_float(node: Node, key: str) -> float:
    v = require_attr(node, key, float)
    if not v > 0:
        raise ValueError(f"attribute '{key}' must be > 0, got {v!r}")
    return float(v)


def _bits(node: Node, key: str, lo: int = 2, hi: int = 32) -> int:
    v = require_attr(node, key, int)
    if not lo <= v <= hi:
        raise ValueError(f"attribute '{key}' must be in {lo}..{hi}, got {v}")
    return v


def _to_torch(values: np.ndarray, dtype: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values)).to(storage_torch_dtype(dtype))


# ------------------------------------------------------------------------------------ quantize/dequantize
def _verify_quantize(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    if not is_float(in_types[0].dtype):
        raise ValueError(f"input must be a float tensor, got {in_types[0].dtype}")
    _positive_float(node, "scale")
    _bits(node, "bits")


def _infer_quantize(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType(in_types[0].shape, int_dtype(node.attrs["bits"]))


def _ref_quantize(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    q = quant.quantize_array(to_numpy(args[0].float()), node.attrs["scale"], node.attrs["bits"])
    return _to_torch(q, node.type.dtype)


def _verify_dequantize(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    if not is_int(in_types[0].dtype):
        raise ValueError(f"input must be an integer tensor, got {in_types[0].dtype}")
    _positive_float(node, "scale")


def _infer_dequantize(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType(in_types[0].shape, "f32")


def _ref_dequantize(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    return torch.from_numpy(quant.dequantize_array(to_numpy(args[0]), node.attrs["scale"]))


# -------------------------------------------------------------------------------------- qlinear / qconv2d
def _verify_requant_attrs(node: Node) -> None:
    m = require_attr(node, "multiplier", int)
    if not 0 < m < (1 << quant.MULT_BITS):
        raise ValueError(f"attribute 'multiplier' must be in 1..{(1 << quant.MULT_BITS) - 1}, got {m}")
    s = require_attr(node, "shift", int)
    if not 0 <= s <= quant.MAX_SHIFT:
        raise ValueError(f"attribute 'shift' must be in 0..{quant.MAX_SHIFT}, got {s}")
    require_attr(node, "relu", bool)
    _bits(node, "acc_bits", 2, 64)
    _bits(node, "out_bits")
    for key in ("in_scale", "w_scale", "out_scale"):
        _positive_float(node, key)


def _verify_int_operands(node: Node, in_types: list[TensorType], graph: Graph, w_rank: int) -> None:
    x, w, b = in_types
    if not is_int(x.dtype):
        raise ValueError(f"input must be an integer tensor, got {x.dtype}")
    for idx, what in ((1, "weight"), (2, "bias")):
        src = graph[node.inputs[idx]]
        if src.op != "constant":
            raise ValueError(f"{what} '{src.name}' must be a constant, got {src.op}")
    if not is_int(w.dtype) or w.rank != w_rank:
        raise ValueError(f"weight must be a rank-{w_rank} integer tensor, got {w}")
    if b.dtype != "int32" or b.shape != (w.shape[0],):
        raise ValueError(f"bias must be int32[{w.shape[0]}], got {b}")
    _verify_requant_attrs(node)


def _verify_qlinear(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    _verify_int_operands(node, in_types, graph, 2)
    x, w = in_types[0], in_types[1]
    if x.rank != 2:
        raise ValueError(f"input must be M x K, got {x}")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"weight shape {shape_str(w.shape)} does not match input features {x.shape[1]}")


def _infer_qlinear(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType((in_types[0].shape[0], in_types[1].shape[0]), int_dtype(node.attrs["out_bits"]))


def _requant_args(node: Node) -> dict:
    a = node.attrs
    return {
        "multiplier": a["multiplier"], "shift": a["shift"], "relu": a["relu"],
        "acc_bits": a["acc_bits"], "out_bits": a["out_bits"],
    }


def _ref_qlinear(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    x, w, b = (to_numpy(t) for t in args)
    return _to_torch(quant.qlinear_int(x, w, b, **_requant_args(node)), node.type.dtype)


def _verify_qconv2d(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    _verify_int_operands(node, in_types, graph, 4)
    x, w = in_types[0], in_types[1]
    if x.rank != 4:
        raise ValueError(f"input must be NCHW, got {x}")
    if w.shape[1] != x.shape[1]:
        raise ValueError(f"weight shape {shape_str(w.shape)} does not match {x.shape[1]} input channels")
    require_int_pair(node, "stride", minimum=1)
    require_int_pair(node, "padding")
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], w.shape[2:], node.attrs["stride"], node.attrs["padding"])
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel {shape_str(w.shape[2:])} does not fit input {x}")


def _infer_qconv2d(node: Node, in_types: list[TensorType]) -> TensorType:
    x, w = in_types[0], in_types[1]
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], w.shape[2:], node.attrs["stride"], node.attrs["padding"])
    return TensorType((x.shape[0], w.shape[0], oh, ow), int_dtype(node.attrs["out_bits"]))


def _ref_qconv2d(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    x, w, b = (to_numpy(t) for t in args)
    y = quant.qconv2d_int(
        x, w, b, **_requant_args(node), stride=tuple(node.attrs["stride"]), padding=tuple(node.attrs["padding"])
    )
    return _to_torch(y, node.type.dtype)


for _op in (
    OpDef("quantize", _verify_quantize, _ref_quantize, _infer_quantize, 1, "float -> int{bits}, symmetric."),
    OpDef("dequantize", _verify_dequantize, _ref_dequantize, _infer_dequantize, 1, "int -> f32 (q * scale)."),
    OpDef("qlinear", _verify_qlinear, _ref_qlinear, _infer_qlinear, 3, "Integer linear + requantise."),
    OpDef("qconv2d", _verify_qconv2d, _ref_qconv2d, _infer_qconv2d, 3, "Integer conv (im2col) + requantise."),
):
    register_op(_op)
