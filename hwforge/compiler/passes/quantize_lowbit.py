"""``quantize_lowbit``: post-training low-bit (1-4 bit) quantisation for LUT/bit-serial inference (`localut`).

Options: ``calibration`` (graph input name -> array), ``wbits`` and ``abits`` (1..4, default 2).

- Weights of every linear/conv2d layer: odd-symmetric ``wbits``-bit codes with one scale per output channel,
  chosen by least squared error (`quant_lowbit.quantize_weights`).
- Activations entering a layer: unsigned ``abits``-bit codes with one scale per tensor, calibrated on the
  calibration set by least squared error over clip ratios of the maximum (``max`` alone leaves most of a 1-2 bit
  range empty). They must be non-negative on the calibration set (network input, post-ReLU values); otherwise
  the layer is refused with UnsupportedOpError, since unsigned codes cannot hold negative values.
- A layer becomes ``[im2col] -> lowbit_matmul -> requantize_codes | dequantize_acc [-> rows_to_nchw]``. Its
  output is requantised to the next layer's codes on the host when every consumer (through relu, flatten and
  reshape) is a low-bit layer; otherwise (the logits, or a float op) it is dequantised to float with the
  per-channel scale, so the last layer keeps its full 32-bit accumulator precision.
- Bias: int32 at ``in_scale * w_scale[n]``, added on the host to the DPU's accumulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hwforge.compiler.passes.base import Calibration, GraphRebuilder, register_pass, require_calibration
from hwforge.errors import ConfigError, UnsupportedOpError
from hwforge.ir import Graph, TensorType, interpret_all
from hwforge.ir import quant as q
from hwforge.ir import quant_lowbit as ql
from hwforge.ir.graph import Node
from hwforge.ir.ops_float import conv_out_hw
from hwforge.ir.ops_lowbit import code_dtype

_PASS_THROUGH = ("relu", "flatten", "reshape")


def _layer(graph: Graph, node: Node) -> bool:
    """Linear/conv layers with constant weights, 2-D linear input, plain convolution."""
    if node.op not in ("linear", "conv2d") or any(graph[i].op != "constant" for i in node.inputs[1:]):
        return False
    if node.op == "linear":
        return graph[node.inputs[0]].type.rank == 2
    return node.attrs.get("groups", 1) == 1 and node.attrs.get("dilation", [1, 1]) == [1, 1]


class _Builder(GraphRebuilder):
    def __init__(self, src: Graph, values: dict[str, np.ndarray], wbits: int, abits: int) -> None:
        super().__init__(src)
        self.values, self.wbits, self.abits = values, wbits, abits
        self.float_of: dict[str, str] = {}           # float-graph name -> new name holding its float value
        self.codes_of: dict[str, tuple[str, float]] = {}  # float-graph name -> (new name of codes, scale)

    def own(self, name: str) -> str:
        """A float-graph node's own name (reserved for it), or a fresh one if a helper node took it."""
        return name if name not in self.g else self.fresh(name)

    def feeds_only_layers(self, name: str) -> bool:
        """True when every use of ``name`` (through relu/flatten/reshape) is a low-bit layer's data input."""
        users = self.src.users(name)
        if not users or name in self.src.outputs:
            return False
        for u in users:
            node = self.src[u]
            if node.op in _PASS_THROUGH:
                if not self.feeds_only_layers(u):
                    return False
            elif not (_layer(self.src, node) and node.inputs[0] == name):
                return False
        return True

    def act_scale(self, name: str) -> float:
        v = self.values[name]
        if v.size and float(v.min()) < 0:
            raise UnsupportedOpError(
                f"quantize_lowbit: value {name!r} enters a low-bit layer but is negative on the calibration set "
                f"(min {float(v.min()):.4g}); activations are unsigned codes (inputs >= 0 or after a ReLU)")
        return ql.activation_scale(v, self.abits)

    def as_float(self, name: str) -> str:
        if name in self.float_of:
            return self.float_of[name]
        if name in self.codes_of:
            codes, scale = self.codes_of[name]
            new = self.g.add(self.fresh(f"{name}.dq"), "dequantize", [codes], {"scale": scale},
                             TensorType(self.g[codes].type.shape, "f32")).name
        else:  # a constant used by a float op
            new = self.fresh(name)
            self.g.add_constant(new, self.src.constant_value(name), self.src[name].type.dtype, key=new)
        self.float_of[name] = new
        return new

    def as_codes(self, name: str) -> tuple[str, float]:
        if name not in self.codes_of:
            scale = self.act_scale(name)
            src = self.float_of[name]
            node = self.g.add(self.fresh(f"{name}.q"), "quantize_codes", [src], {"scale": scale, "bits": self.abits},
                              TensorType(self.g[src].type.shape, code_dtype(self.abits)))
            self.codes_of[name] = (node.name, scale)
        return self.codes_of[name]

    def layer(self, node: Node) -> None:
        x, in_scale = self.as_codes(node.inputs[0])
        w = self.src.constant_value(node.inputs[1]).astype(np.float32)
        n_out = w.shape[0]
        codes, w_scales = ql.quantize_weights(w.reshape(n_out, -1), self.wbits)
        b = (self.src.constant_value(node.inputs[2]).astype(np.float64) if len(node.inputs) > 2
             else np.zeros(n_out, np.float64))
        lo, hi = q.qrange(32)
        bq = np.clip(np.round(b / (in_scale * w_scales)), lo, hi).astype(np.int32)
        rows = x
        oh = ow = 0
        if node.op == "conv2d":
            xt = self.g[x].type
            kh, kw = int(w.shape[2]), int(w.shape[3])
            stride, padding = node.attrs["stride"], node.attrs["padding"]
            oh, ow = conv_out_hw(xt.shape[2], xt.shape[3], (kh, kw), stride, padding)
            rows = self.g.add(self.fresh(f"{node.name}.im2col"), "im2col", [x],
                              {"kernel": [kh, kw], "stride": stride, "padding": padding},
                              TensorType((xt.shape[0] * oh * ow, xt.shape[1] * kh * kw), xt.dtype)).name
        m = self.g[rows].type.shape[0]
        wname = self.g.add_constant(self.fresh(f"{node.name}.wcodes"), codes.astype(np.int8),
                                    code_dtype(self.wbits)).name
        lname = self.g.add_constant(self.fresh(f"{node.name}.levels"), ql.odd_levels(self.wbits).astype(np.int8),
                                    "int8").name
        bname = self.g.add_constant(self.fresh(f"{node.name}.bias"), bq, "int32").name
        mm = self.g.add(self.fresh(f"{node.name}.mm"), "lowbit_matmul", [rows, wname, lname],
                        {"wbits": self.wbits, "abits": self.abits, "in_scale": in_scale},
                        TensorType((m, n_out), "int32"))
        relu = bool(node.attrs.get("relu", False))
        to_codes = self.feeds_only_layers(node.name)
        if to_codes:
            out_scale = self.act_scale(node.name)
            mults, shifts = ql.requant_params(in_scale, w_scales, out_scale)
            attrs = {"multipliers": mults, "shifts": shifts, "bits": self.abits, "in_scale": in_scale,
                     "w_scales": [float(s) for s in w_scales], "out_scale": out_scale}
            out = self.g.add(self.fresh(f"{node.name}.rq"), "requantize_codes", [mm.name, bname], attrs,
                             TensorType((m, n_out), code_dtype(self.abits)))
        else:
            scales = [float(in_scale * s) for s in w_scales]
            out = self.g.add(self.fresh(f"{node.name}.dq"), "dequantize_acc", [mm.name, bname],
                             {"scales": scales, "relu": relu}, TensorType((m, n_out), "f32"))
        result = out.name
        if node.op == "conv2d":
            t = out.type
            self.taken.discard(node.name)  # the NCHW value keeps the layer's name
            result = self.g.add(self.fresh(node.name), "rows_to_nchw", [out.name], {"oh": oh, "ow": ow},
                                TensorType((m // (oh * ow), n_out, oh, ow), t.dtype)).name
        if to_codes:
            self.codes_of[node.name] = (result, out_scale)
        else:
            self.float_of[node.name] = result

    def build(self) -> Graph:
        for node in self.src.nodes():
            if node.op == "input":
                self.g.add(node.name, "input", [], {}, node.type)
                self.float_of[node.name] = node.name
            elif node.op == "constant":
                continue
            elif _layer(self.src, node):
                self.layer(node)
            elif node.op in _PASS_THROUGH and node.inputs[0] in self.codes_of:
                x, scale = self.codes_of[node.inputs[0]]
                t = node.type.with_(dtype=self.g[x].type.dtype)
                new = self.g.add_node(Node(self.own(node.name), node.op, [x], dict(node.attrs), t, node.meta))
                self.codes_of[node.name] = (new.name, scale)
            else:
                ins = [self.as_float(i) for i in node.inputs]
                new = self.own(node.name)
                self.g.add_node(Node(new, node.op, ins, dict(node.attrs), node.type, node.meta))
                self.float_of[node.name] = new
        self.g.inputs = list(self.src.inputs)
        self.g.outputs = list(self.src.outputs)
        return self.g


def calibrate_values(graph: Graph, calibration: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every float value of the graph on the calibration inputs (the low-bit calibrators need distributions)."""
    values = interpret_all(graph, calibration)
    return {k: v.detach().numpy() for k, v in values.items() if v.is_floating_point()}


@register_pass
@dataclass(frozen=True)
class QuantizeLowbit:
    """``wbits``-bit weights (odd-symmetric levels, per-channel scales) and ``abits``-bit activation codes."""

    name: ClassVar[str] = "quantize_lowbit"
    wbits: int = 2
    abits: int = 2

    def __post_init__(self) -> None:
        for key in ("wbits", "abits"):
            v = getattr(self, key)
            if not isinstance(v, int) or not 1 <= v <= 4:
                raise ConfigError(f"quantize_lowbit: {key} must be 1..4, got {v!r}")

    def run(self, graph: Graph, calibration: Calibration | None = None) -> Graph:
        cal = require_calibration(self.name, calibration)
        return _Builder(graph, calibrate_values(graph, dict(cal.inputs)), self.wbits, self.abits).build()
