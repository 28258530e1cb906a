"""``fixed_point``: a float GCN/ResGCN graph -> the fixed-point ops of docs/CONTRACTS.md ("Graph convolution").

Parameters of `FixedPoint` (formats as strings, checked when the pass is built):
- ``fmt`` (default ``fixed(Q8.8)``): features/activations, the format of every layer's output.
- ``weight_fmt`` (default: ``fmt``): weights, and the scale of folded BatchNorms.
- ``adj_fmt`` (default ``fixed(Q2.14)``): the normalised adjacency values. Â's entries lie in (0, 1], and 1.0
  occurs (the self loop of an isolated node), so the format needs one integer bit besides the sign: Q2.14 is
  the most precise 16-bit format that holds 1.0 exactly (Q1.15 would saturate it to 1 - 2**-15).
- ``acc_bits`` (default 32): accumulator width of every op (two's-complement wrap).

Mapping: ``linear`` (constant weight, 2-D input) -> ``qmatmul_fixed``; ``spmm`` -> ``qspmm``; ``affine`` ->
``qaffine``; ``add`` of two converted values in one format -> ``qadd_fixed`` (saturating); ``relu`` passes
fixed values through. Biases and affine shifts are quantised at the accumulator's fraction bits (``frac_in +
frac_w`` / ``frac_in + frac_adj``) to ``min(acc_bits, 32)`` bits. Graph inputs get a ``quantize_fixed`` and
outputs a ``dequantize_fixed``, so the converted graph takes and returns the same float tensors. Any other op
stays float, its inputs dequantised first (as in the int8 ``quantize`` pass). The interpreter on the result
is the bit-exact integer reference of the hardware.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from hwforge.compiler.passes.base import Calibration, GraphRebuilder, register_pass
from hwforge.errors import ConfigError
from hwforge.ir import Graph, TensorType, fixed_dtype, fixed_format, interpret, storage_numpy_dtype
from hwforge.ir import quant as q
from hwforge.ir.graph import Node

DEFAULT_FMT = "fixed(Q8.8)"
DEFAULT_ADJ_FMT = "fixed(Q2.14)"
_SHORT = re.compile(r"^Q([0-9]+)\.([0-9]+)$")


def parse_fixed(text: Any, option: str) -> tuple[int, int]:
    """``fixed(Q8.8)`` or ``Q8.8`` -> ``(bits, frac)``; ConfigError naming the option otherwise."""
    s = str(text).strip()
    m = _SHORT.match(s)
    if m:
        s = f"fixed({s})"
    try:
        return fixed_format(s)
    except ValueError:
        raise ConfigError(f"fixed_point: option '{option}' must look like fixed(Q8.8) or Q8.8, got {text!r}") from None


class _Builder(GraphRebuilder):
    def __init__(self, src: Graph, fmt: tuple[int, int], wfmt: tuple[int, int], afmt: tuple[int, int],
                 acc_bits: int) -> None:
        super().__init__(src)
        self.fmt, self.wfmt, self.afmt, self.acc_bits = fmt, wfmt, afmt, acc_bits
        self.value: dict[str, tuple[str, bool]] = {}  # float-graph name -> (new name, holds fixed point)
        self.consts: dict[tuple[str, str], str] = {}
        self.cache: dict[str, str] = {}  # conversions between float and fixed, made once per value

    # ----------------------------------------------------------------------------------------- constants
    def const(self, src_name: str, dtype: str, frac: int | None = None) -> str:
        """The constant ``src_name`` in ``dtype`` (quantised with ``frac`` fraction bits for fixed dtypes)."""
        key = (src_name, dtype)
        if key not in self.consts:
            arr = self.src.constant_value(src_name)
            if frac is not None:
                bits, _ = fixed_format(dtype)
                arr = q.to_fixed(arr, frac, bits)
            name = self.fresh(src_name)
            self.g.add_constant(name, arr.astype(storage_numpy_dtype(dtype)), dtype, key=name)
            self.consts[key] = name
        return self.consts[key]

    def fixed_const(self, src_name: str, fmt: tuple[int, int]) -> str:
        return self.const(src_name, fixed_dtype(*fmt), fmt[1])

    def acc_const(self, src_name: str, frac_acc: int) -> str:
        bits = min(self.acc_bits, 32)
        if frac_acc >= bits:
            raise ConfigError(f"fixed_point: {frac_acc} accumulator fraction bits do not fit {bits}-bit constants")
        return self.const(src_name, fixed_dtype(bits, frac_acc), frac_acc)

    # ------------------------------------------------------------------------------------------- values
    def as_fixed(self, name: str) -> str:
        new, fixed = self.value[name]
        if fixed:
            return new
        if name not in self.cache:
            bits, frac = self.fmt
            self.cache[name] = self.g.add(self.fresh(f"{name}.fx"), "quantize_fixed", [new],
                                          {"bits": bits, "frac": frac},
                                          TensorType(self.g[new].type.shape, fixed_dtype(bits, frac))).name
        return self.cache[name]

    def as_float(self, name: str) -> str:
        if name not in self.value:  # a constant read by a float op
            node = self.src[name]
            self.value[name] = (self.const(name, node.type.dtype), False)
        new, fixed = self.value[name]
        if not fixed:
            return new
        if name not in self.cache:
            _, frac = fixed_format(self.g[new].type.dtype)
            self.cache[name] = self.g.add(self.fresh(f"{name}.dq"), "dequantize_fixed", [new], {"frac": frac},
                                          TensorType(self.g[new].type.shape, "f32")).name
        return self.cache[name]

    def emit(self, node: Node, op: str, inputs: list[str], attrs: dict[str, Any]) -> None:
        bits, frac = self.fmt
        attrs = {**attrs, "frac_out": frac, "out_bits": bits, "acc_bits": self.acc_bits,
                 "relu": bool(node.attrs.get("relu", False))}
        t = TensorType(node.type.shape, fixed_dtype(bits, frac))
        self.g.add_node(Node(node.name, op, inputs, attrs, t, node.meta))
        self.value[node.name] = (node.name, True)

    # ------------------------------------------------------------------------------------------ the walk
    def _consts(self, node: Node, first: int) -> bool:
        return all(self.src[i].op == "constant" for i in node.inputs[first:])

    def convert(self, node: Node) -> bool:
        """Emit the fixed-point form of ``node``; False when it has none (it then stays float)."""
        fx = self.fmt[1]
        ins = node.inputs
        if node.op == "linear" and self._consts(node, 1) and self.src[ins[0]].type.rank == 2:
            x = self.as_fixed(ins[0])
            args = [x, self.fixed_const(ins[1], self.wfmt)]
            if len(ins) == 3:
                args.append(self.acc_const(ins[2], fx + self.wfmt[1]))
            self.emit(node, "qmatmul_fixed", args, {"frac_in": fx, "frac_w": self.wfmt[1]})
        elif node.op == "spmm" and self._consts(node, 1):
            x = self.as_fixed(ins[0])
            args = [x, self.const(ins[1], "int32"), self.const(ins[2], "int32"), self.fixed_const(ins[3], self.afmt)]
            if len(ins) == 5:
                args.append(self.acc_const(ins[4], fx + self.afmt[1]))
            self.emit(node, "qspmm", args, {"frac_in": fx, "frac_adj": self.afmt[1]})
        elif node.op == "affine" and self._consts(node, 1):
            x = self.as_fixed(ins[0])
            args = [x, self.fixed_const(ins[1], self.wfmt), self.acc_const(ins[2], fx + self.wfmt[1])]
            self.emit(node, "qaffine", args, {"frac_in": fx, "frac_scale": self.wfmt[1]})
        elif node.op == "add" and all(self.value.get(i, ("", False))[1] for i in ins) and (
                self.src[ins[0]].type.shape == self.src[ins[1]].type.shape):
            t = self.g[self.value[ins[0]][0]].type
            self.g.add_node(Node(node.name, "qadd_fixed", [self.value[i][0] for i in ins], {}, t, node.meta))
            self.value[node.name] = (node.name, True)
        elif node.op == "relu" and self.value[ins[0]][1]:
            x = self.value[ins[0]][0]
            self.g.add_node(Node(node.name, "relu", [x], {}, self.g[x].type, node.meta))
            self.value[node.name] = (node.name, True)
        else:
            return False
        return True

    def build(self) -> Graph:
        for node in self.src.nodes():
            if node.op == "input":
                self.g.add(node.name, "input", [], {}, node.type)
                self.value[node.name] = (node.name, False)
            elif node.op == "constant":
                continue
            elif node.op == "output":
                src = self.as_float(node.inputs[0])
                self.g.add_node(Node(node.name, "output", [src], {}, self.g[src].type, node.meta))
            elif not self.convert(node):
                ins = [self.as_float(i) for i in node.inputs]
                self.g.add_node(Node(node.name, node.op, ins, dict(node.attrs), node.type, node.meta))
                self.value[node.name] = (node.name, False)
        self.g.inputs = list(self.src.inputs)
        self.g.outputs = list(self.src.outputs)
        return self.g


@register_pass
@dataclass(frozen=True)
class FixedPoint:
    """Float GCN ops -> fixed-point ops in ``fmt`` (weights in ``weight_fmt``, default ``fmt``; adjacency in
    ``adj_fmt``) with ``acc_bits``-bit wrapping accumulators. Formats are checked when the pass is built."""

    name: ClassVar[str] = "fixed_point"
    fmt: str = DEFAULT_FMT
    weight_fmt: str | None = None
    adj_fmt: str = DEFAULT_ADJ_FMT
    acc_bits: int = 32

    def __post_init__(self) -> None:
        formats = [parse_fixed(self.fmt, "fmt"), parse_fixed(self.weight_fmt or self.fmt, "weight_fmt"),
                   parse_fixed(self.adj_fmt, "adj_fmt")]
        if not isinstance(self.acc_bits, int) or not max(f[0] for f in formats) < self.acc_bits <= 64:
            raise ConfigError(f"fixed_point: acc_bits must be wider than the formats and <= 64, got {self.acc_bits!r}")

    def run(self, graph: Graph, calibration: Calibration | None = None) -> Graph:
        fmt = parse_fixed(self.fmt, "fmt")
        wfmt = parse_fixed(self.weight_fmt or self.fmt, "weight_fmt")
        afmt = parse_fixed(self.adj_fmt, "adj_fmt")
        return _Builder(graph, fmt, wfmt, afmt, self.acc_bits).build()


def fixed_point_error(float_graph: Graph, fixed_graph: Graph, inputs: dict[str, np.ndarray]) -> dict[str, float]:
    """Error of the fixed-point graph against the float graph on ``inputs``: max and mean |difference| and the
    float outputs' max |value| (for scale), over all outputs."""
    ref, got = interpret(float_graph, inputs), interpret(fixed_graph, inputs)
    diffs = [np.abs(got[k].numpy().astype(np.float64) - ref[k].numpy()) for k in ref]
    return {
        "max_abs": float(max(d.max() for d in diffs)),
        "mean_abs": float(np.mean(np.concatenate([d.ravel() for d in diffs]))),
        "float_max_abs": float(max(np.abs(r.numpy()).max() for r in ref.values())),
    }
