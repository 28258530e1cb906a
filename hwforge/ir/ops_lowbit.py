"""Low-bit (1-4 bit) inference ops, produced by the ``quantize_lowbit`` pass and run by the ``localut`` target.

A low-bit linear layer is three ops so that the part a device computes is one op with an exact integer
meaning (`hwforge.ir.quant_lowbit`):

- ``quantize_codes``(x float) attrs ``{scale, bits}`` -> unsigned codes (dtype ``int{bits+1}``).
- ``lowbit_matmul``(codes M x K, weight codes const N x K, levels const [2**wbits]) attrs ``{wbits, abits}`` ->
  int32 M x N: ``sum_k levels[wc[n, k]] * ac[m, k]`` wrapped to 32 bits. This is the DPU kernel's output.
- ``requantize_codes``(acc int32, bias const int32 [N]) attrs ``{multipliers, shifts, bits, in_scale, w_scales,
  out_scale}`` -> codes of the next layer (host side, between DPU launches), or
  ``dequantize_acc``(acc int32, bias const int32 [N]) attrs ``{scales, relu}`` -> f32 (last layers).

Convolutions go through ``im2col`` (codes NCHW -> rows, (n, oh, ow) x (c, kh, kw) as `quant.im2col`) and come
back with ``rows_to_nchw`` (any dtype).
"""

from __future__ import annotations

import numpy as np
import torch

from hwforge.ir import quant, quant_lowbit
from hwforge.ir.graph import Graph, Node
from hwforge.ir.ops import EvalContext, OpDef, register_op, require_attr, require_int_pair, shape_str, to_numpy
from hwforge.ir.ops_float import conv_out_hw
from hwforge.ir.types import TensorType, int_dtype, is_float, is_int, storage_torch_dtype


def _to_torch(values: np.ndarray, dtype: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values)).to(storage_torch_dtype(dtype))


def _bits(node: Node, key: str, lo: int = 1, hi: int = 4) -> int:
    v = require_attr(node, key, int)
    if not lo <= v <= hi:
        raise ValueError(f"attribute '{key}' must be in {lo}..{hi}, got {v}")
    return v


def code_dtype(bits: int) -> str:
    """Storage dtype of unsigned ``bits``-bit codes: a signed integer one bit wider (the IR has no unsigned)."""
    return int_dtype(bits + 1)


def _constant(graph: Graph, node: Node, idx: int, what: str) -> np.ndarray:
    src = graph[node.inputs[idx]]
    if src.op != "constant":
        raise ValueError(f"{what} '{src.name}' must be a constant, got {src.op}")
    return graph.constant_value(src.name)


def _channel_list(node: Node, key: str, n: int, kind: type) -> list:
    v = require_attr(node, key, list)

    def ok(x: object) -> bool:
        if isinstance(x, bool):
            return False
        return isinstance(x, (int, float)) if kind is float else isinstance(x, kind)

    if len(v) != n or not all(ok(x) for x in v):
        raise ValueError(f"attribute '{key}' must be a list of {n} {kind.__name__}s")
    return v


# ------------------------------------------------------------------------------------------ quantize_codes
def _verify_quantize_codes(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    if not is_float(in_types[0].dtype):
        raise ValueError(f"input must be a float tensor, got {in_types[0].dtype}")
    if not require_attr(node, "scale", float) > 0:
        raise ValueError("attribute 'scale' must be > 0")
    _bits(node, "bits")


def _infer_quantize_codes(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType(in_types[0].shape, code_dtype(node.attrs["bits"]))


def _ref_quantize_codes(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    q = quant_lowbit.quantize_codes(to_numpy(args[0].float()), node.attrs["scale"], node.attrs["bits"])
    return _to_torch(q, node.type.dtype)


# ------------------------------------------------------------------------------------------- lowbit_matmul
def _verify_lowbit_matmul(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    x, w, lv = in_types
    wbits, abits = _bits(node, "wbits"), _bits(node, "abits")
    if x.rank != 2 or x.dtype != code_dtype(abits):
        raise ValueError(f"input must be M x K {abits}-bit codes ({code_dtype(abits)}), got {x}")
    wc = _constant(graph, node, 1, "weight codes")
    levels = _constant(graph, node, 2, "level table")
    if w.rank != 2 or w.shape[1] != x.shape[1] or not is_int(w.dtype):
        raise ValueError(f"weight codes {w} do not match input features {x.shape[1]}")
    if wc.size and (wc.min() < 0 or wc.max() >= 1 << wbits):
        raise ValueError(f"weight codes must be in 0..{(1 << wbits) - 1}")
    if lv.shape != (1 << wbits,) or not is_int(lv.dtype):
        raise ValueError(f"level table must be int[{1 << wbits}], got {lv}")
    if np.abs(levels.astype(np.int64)).max() > 127:
        raise ValueError("levels must fit in int8")


def _infer_lowbit_matmul(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType((in_types[0].shape[0], in_types[1].shape[0]), "int32")


def _ref_lowbit_matmul(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    x, wc, levels = (to_numpy(t) for t in args)
    return _to_torch(quant_lowbit.lowbit_matmul_int(x, wc, levels), "int32")


# -------------------------------------------------------------------------- requantize_codes / dequantize_acc
def _verify_acc_bias(node: Node, in_types: list[TensorType], graph: Graph) -> int:
    acc, b = in_types
    if acc.dtype != "int32" or acc.rank != 2:
        raise ValueError(f"input must be an int32 M x N accumulator, got {acc}")
    _constant(graph, node, 1, "bias")
    if b.dtype != "int32" or b.shape != (acc.shape[1],):
        raise ValueError(f"bias must be int32[{acc.shape[1]}], got {b}")
    return acc.shape[1]


def _verify_requantize_codes(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    n = _verify_acc_bias(node, in_types, graph)
    _bits(node, "bits")
    mults = _channel_list(node, "multipliers", n, int)
    shifts = _channel_list(node, "shifts", n, int)
    if not all(0 < m < 1 << quant.MULT_BITS for m in mults):
        raise ValueError(f"multipliers must be in 1..{(1 << quant.MULT_BITS) - 1}")
    if not all(0 <= s <= quant.MAX_SHIFT for s in shifts):
        raise ValueError(f"shifts must be in 0..{quant.MAX_SHIFT}")
    _channel_list(node, "w_scales", n, float)
    for key in ("in_scale", "out_scale"):
        if not require_attr(node, key, float) > 0:
            raise ValueError(f"attribute '{key}' must be > 0")


def _infer_requantize_codes(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType(in_types[0].shape, code_dtype(node.attrs["bits"]))


def _ref_requantize_codes(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    acc, bias = (to_numpy(t) for t in args)
    a = node.attrs
    q = quant_lowbit.requantize_codes_int(acc, bias, np.array(a["multipliers"]), np.array(a["shifts"]), a["bits"])
    return _to_torch(q, node.type.dtype)


def _verify_dequantize_acc(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    n = _verify_acc_bias(node, in_types, graph)
    if not all(s > 0 for s in _channel_list(node, "scales", n, float)):
        raise ValueError("scales must be > 0")
    require_attr(node, "relu", bool)


def _infer_dequantize_acc(node: Node, in_types: list[TensorType]) -> TensorType:
    return TensorType(in_types[0].shape, "f32")


def _ref_dequantize_acc(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    acc, bias = (to_numpy(t) for t in args)
    return torch.from_numpy(quant_lowbit.dequantize_acc(acc, bias, np.array(node.attrs["scales"]),
                                                        node.attrs["relu"]))


# ------------------------------------------------------------------------------------ im2col / rows_to_nchw
def _verify_im2col(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    x = in_types[0]
    if x.rank != 4 or not is_int(x.dtype):
        raise ValueError(f"input must be an integer NCHW tensor, got {x}")
    k = require_int_pair(node, "kernel", minimum=1)
    require_int_pair(node, "stride", minimum=1)
    require_int_pair(node, "padding")
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], k, node.attrs["stride"], node.attrs["padding"])
    if oh < 1 or ow < 1:
        raise ValueError(f"kernel {shape_str(k)} does not fit input {x}")


def _infer_im2col(node: Node, in_types: list[TensorType]) -> TensorType:
    x = in_types[0]
    kh, kw = node.attrs["kernel"]
    oh, ow = conv_out_hw(x.shape[2], x.shape[3], (kh, kw), node.attrs["stride"], node.attrs["padding"])
    return TensorType((x.shape[0] * oh * ow, x.shape[1] * kh * kw), x.dtype)


def _ref_im2col(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    kh, kw = node.attrs["kernel"]
    rows = quant.im2col(to_numpy(args[0]), kh, kw, tuple(node.attrs["stride"]), tuple(node.attrs["padding"]))
    return _to_torch(rows, node.type.dtype)


def _verify_rows_to_nchw(node: Node, in_types: list[TensorType], graph: Graph) -> None:
    x = in_types[0]
    oh, ow = require_attr(node, "oh", int), require_attr(node, "ow", int)
    if x.rank != 2 or oh < 1 or ow < 1 or x.shape[0] % (oh * ow):
        raise ValueError(f"input must be (N*{oh}*{ow}) x C rows, got {x}")


def _infer_rows_to_nchw(node: Node, in_types: list[TensorType]) -> TensorType:
    x = in_types[0]
    oh, ow = node.attrs["oh"], node.attrs["ow"]
    return TensorType((x.shape[0] // (oh * ow), x.shape[1], oh, ow), x.dtype)


def _ref_rows_to_nchw(node: Node, args: list[torch.Tensor], ctx: EvalContext) -> torch.Tensor:
    rows = args[0]
    oh, ow = node.attrs["oh"], node.attrs["ow"]
    return rows.reshape(rows.shape[0] // (oh * ow), oh, ow, rows.shape[1]).permute(0, 3, 1, 2).contiguous()


for _op in (
    OpDef("quantize_codes", _verify_quantize_codes, _ref_quantize_codes, _infer_quantize_codes, 1,
          "float -> unsigned {bits}-bit codes."),
    OpDef("lowbit_matmul", _verify_lowbit_matmul, _ref_lowbit_matmul, _infer_lowbit_matmul, 3,
          "sum_k levels[wc[n,k]] * codes[m,k], int32 (the DPU kernel)."),
    OpDef("requantize_codes", _verify_requantize_codes, _ref_requantize_codes, _infer_requantize_codes, 2,
          "acc + bias -> next layer's codes, per-channel multiplier/shift (host)."),
    OpDef("dequantize_acc", _verify_dequantize_acc, _ref_dequantize_acc, _infer_dequantize_acc, 2,
          "(acc + bias) * scale[n] -> f32 (host)."),
    OpDef("im2col", _verify_im2col, _ref_im2col, _infer_im2col, 1, "Conv patches as rows (n,oh,ow)x(c,kh,kw)."),
    OpDef("rows_to_nchw", _verify_rows_to_nchw, _ref_rows_to_nchw, _infer_rows_to_nchw, 1,
          "(n*oh*ow) x C rows -> NCHW."),
):
    register_op(_op)
