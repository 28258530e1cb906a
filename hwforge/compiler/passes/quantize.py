"""``quantize``: post-training, symmetric, per-tensor integer quantisation (int8 by default).

Parameters: ``bits`` (default 8), ``acc_bits`` (default 32); ``run`` needs the model's `Calibration` (run
through the float interpreter).

- Activation scales: ``max|x| / qmax`` recorded on the calibration data for every value entering or leaving a
  linear/conv (after a fused ReLU, because ``fuse_relu`` ran first and the float op then includes it).
- Weights: per-tensor symmetric at ``max|w| / qmax``; bias int32 at ``in_scale * w_scale``, so it adds
  straight into the accumulator.
- Requantisation: ``quantize_multiplier(in_scale * w_scale / out_scale)`` -> (multiplier, shift). Every
  layer's output, the last one included, is requantised to ``bits`` and dequantised only at the outputs.
- relu/flatten/reshape pass integer tensors through (same scale). Any other op stays float: its integer
  inputs are dequantised first, so a graph with ops this pass does not know still quantises correctly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hwforge.compiler.passes.base import Calibration, GraphRebuilder, register_pass, require_calibration
from hwforge.errors import ConfigError
from hwforge.ir import Graph, TensorType, int_dtype, interpret_all, storage_numpy_dtype
from hwforge.ir import quant as q
from hwforge.ir.graph import Node

_PASS_THROUGH = ("relu", "flatten", "reshape")


def _quantizable(graph: Graph, node: Node) -> bool:
    """Linear/conv layers the integer ops can express: constant weights, 2-D input, plain convolution."""
    if node.op not in ("linear", "conv2d"):
        return False
    if any(graph[i].op != "constant" for i in node.inputs[1:]):
        return False
    if node.op == "linear":
        return graph[node.inputs[0]].type.rank == 2
    return node.attrs.get("groups", 1) == 1 and node.attrs.get("dilation", [1, 1]) == [1, 1]


class _Builder(GraphRebuilder):
    """Builds the quantised graph while walking the float graph in topological order."""

    def __init__(self, src: Graph, amax: dict[str, float], bits: int, acc_bits: int) -> None:
        super().__init__(src)
        self.amax, self.bits, self.acc_bits = amax, bits, acc_bits
        self.value: dict[str, tuple[str, float | None]] = {}  # float-graph name -> (new name, scale or None)
        self.q_cache: dict[str, str] = {}
        self.dq_cache: dict[str, str] = {}

    def scale_of(self, name: str) -> float:
        return q.symmetric_scale(self.amax.get(name, 0.0), self.bits)

    def int_type(self, shape: tuple[int, ...], scale: float, bits: int | None = None) -> TensorType:
        bits = bits or self.bits
        return TensorType(shape, int_dtype(bits), quant={"scale": scale, "bits": bits})

    def as_float(self, name: str) -> str:
        """New-graph name holding the float value of ``name`` (dequantising integer values once)."""
        if name not in self.value:  # a constant used by a float op: copy it over on first use
            node = self.src[name]
            new = self.fresh(name)
            self.g.add_constant(new, self.src.constant_value(name), node.type.dtype, key=new)
            self.value[name] = (new, None)
        new, scale = self.value[name]
        if scale is None:
            return new
        if name not in self.dq_cache:
            shape = self.g[new].type.shape
            self.dq_cache[name] = self.g.add(
                self.fresh(f"{name}.dq"), "dequantize", [new], {"scale": scale}, TensorType(shape, "f32")
            ).name
        return self.dq_cache[name]

    def as_int(self, name: str) -> tuple[str, float]:
        """New-graph name and scale of the integer value of ``name`` (quantising float values once)."""
        new, scale = self.value[name]
        if scale is not None:
            return new, scale
        if name not in self.q_cache:
            scale = self.scale_of(name)
            node = self.g.add(self.fresh(f"{name}.q"), "quantize", [new], {"scale": scale, "bits": self.bits},
                              self.int_type(self.g[new].type.shape, scale))
            self.q_cache[name] = node.name
        return self.q_cache[name], self.g[self.q_cache[name]].type.quant["scale"]

    def layer(self, node: Node) -> None:
        x, in_scale = self.as_int(node.inputs[0])
        w = self.src.constant_value(node.inputs[1]).astype(np.float32)
        w_scale = q.symmetric_scale(float(np.abs(w).max()) if w.size else 0.0, self.bits)
        wq = q.quantize_array(w, w_scale, self.bits).astype(storage_numpy_dtype(int_dtype(self.bits)))
        b = (self.src.constant_value(node.inputs[2]).astype(np.float64) if len(node.inputs) > 2
             else np.zeros(w.shape[0], np.float64))
        lo, hi = q.qrange(32)
        bq = np.clip(np.round(b / (in_scale * w_scale)), lo, hi).astype(np.int32)
        out_scale = self.scale_of(node.name)
        multiplier, shift = q.quantize_multiplier(in_scale * w_scale / out_scale)
        wname = self.g.add_constant(self.fresh(f"{node.name}.weight"), wq, int_dtype(self.bits)).name
        self.g[wname].type = self.int_type(wq.shape, w_scale)
        bname = self.g.add_constant(self.fresh(f"{node.name}.bias"), bq, "int32").name
        self.g[bname].type = self.int_type(bq.shape, in_scale * w_scale, 32)
        attrs = {
            "multiplier": multiplier, "shift": shift, "relu": bool(node.attrs.get("relu", False)),
            "acc_bits": self.acc_bits, "out_bits": self.bits,
            "in_scale": in_scale, "w_scale": w_scale, "out_scale": out_scale,
        }
        op = "qlinear"
        if node.op == "conv2d":
            op = "qconv2d"
            attrs.update(stride=node.attrs["stride"], padding=node.attrs["padding"])
        new = Node(node.name, op, [x, wname, bname], attrs, self.int_type(node.type.shape, out_scale), node.meta)
        self.g.add_node(new)
        self.value[node.name] = (node.name, out_scale)

    def build(self) -> Graph:
        for node in self.src.nodes():
            if node.op == "input":
                self.g.add(node.name, "input", [], {}, node.type)
                self.value[node.name] = (node.name, None)
            elif node.op == "constant":
                continue  # materialised on first float use; layers quantise their own weights
            elif _quantizable(self.src, node):
                self.layer(node)
            elif node.op in _PASS_THROUGH and self.value.get(node.inputs[0], ("", None))[1] is not None:
                x, scale = self.value[node.inputs[0]]
                t = node.type.with_(dtype=self.g[x].type.dtype, quant=self.g[x].type.quant)
                self.g.add_node(Node(node.name, node.op, [x], dict(node.attrs), t, node.meta))
                self.value[node.name] = (node.name, scale)
            else:
                ins = [self.as_float(i) for i in node.inputs]
                self.g.add_node(Node(node.name, node.op, ins, dict(node.attrs), node.type, node.meta))
                self.value[node.name] = (node.name, None)
        self.g.inputs = list(self.src.inputs)
        self.g.outputs = list(self.src.outputs)
        return self.g


def calibrate(graph: Graph, calibration: dict[str, np.ndarray]) -> dict[str, float]:
    """max |value| of every float node over the calibration inputs."""
    values = interpret_all(graph, calibration)
    return {k: float(v.abs().max()) for k, v in values.items() if v.is_floating_point() and v.numel()}


@register_pass
@dataclass(frozen=True)
class Quantize:
    """Symmetric per-tensor quantisation to ``bits``-bit values with ``acc_bits``-bit wrapping accumulators."""

    name: ClassVar[str] = "quantize"
    bits: int = 8
    acc_bits: int = 32

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not 2 <= self.bits <= 16:
            raise ConfigError(f"quantize: bits must be 2..16, got {self.bits!r}")
        if not isinstance(self.acc_bits, int) or not 2 * self.bits <= self.acc_bits <= 64:
            raise ConfigError(f"quantize: acc_bits must be {2 * self.bits}..64, got {self.acc_bits!r}")

    def run(self, graph: Graph, calibration: Calibration | None = None) -> Graph:
        cal = require_calibration(self.name, calibration)
        return _Builder(graph, calibrate(graph, dict(cal.inputs)), self.bits, self.acc_bits).build()
