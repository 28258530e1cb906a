"""Lower a quantised graph onto the `gemm` accelerator's layer program.

The accelerator runs a chain of GEMM layers; each layer reads its A operand from its *source* (the network
input for the first layer, the previous layer's output otherwise), optionally through a gather table. This
module tracks, for every IR value, where each of its logical elements lives in the source buffer (a "physical
index" array of the value's logical shape). That one mechanism expresses reshape/flatten (reshape the index
array), conv2d as im2col (gather windows, -1 for zero padding) and the NHWC-vs-NCHW layout change between a
convolution and a following linear layer, with no data movement on the host.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from hwforge.errors import UnsupportedOpError
from hwforge.ir.quant import im2col, quantize_array
from hwforge.rtl.gemm import GemmLayer

if TYPE_CHECKING:
    from hwforge.ir import Graph

SUPPORTED_OPS = ("input", "constant", "quantize", "qlinear", "qconv2d", "flatten", "reshape", "dequantize", "output")


@dataclass
class LoweredLayer:
    """One IR layer node as the accelerator runs it: the hardware `GemmLayer` plus where it came from."""

    node: str
    layer: GemmLayer
    m: int          # rows of A (the gathered or dense source)
    acc_bits: int   # the IR's accumulator width; must equal the array's, or the references disagree

    @property
    def macs(self) -> int:
        return self.m * self.layer.k * self.layer.n


@dataclass
class _Value:
    source: int           # -1: network input buffer; i >= 0: output of layer i
    phys: np.ndarray      # logical shape -> flat index into the source buffer (-1 = constant zero)


@dataclass
class GemmPlan:
    """Everything the host needs to run a graph on the accelerator and read the answer back."""

    input_node: str
    input_scale: float
    input_bits: int
    input_shape: tuple[int, ...]
    layers: list[LoweredLayer] = field(default_factory=list)
    # output node -> (layer index, logical->physical index array, dequantisation scale)
    outputs: dict[str, tuple[int, np.ndarray, float]] = field(default_factory=dict)
    # IR node -> (layer index, logical->physical index array): where each layer's IR value lives
    layer_values: dict[str, tuple[int, np.ndarray]] = field(default_factory=dict)


def lower_graph(graph: Graph) -> GemmPlan:
    """Turn a verified, quantised graph into a `GemmPlan`, or say which node the accelerator cannot run."""
    values: dict[str, _Value] = {}
    plan: GemmPlan | None = None
    for node in graph.nodes():
        op = node.op
        if op not in SUPPORTED_OPS:
            raise UnsupportedOpError(
                f"gemm target: node {node.name!r} uses op {op!r}, which this target cannot run "
                f"(supported: {', '.join(SUPPORTED_OPS)}); quantise the model first if it is a float op")
        if op in ("input", "constant"):
            continue
        if op == "quantize":
            src = graph.node(node.inputs[0])
            if src.op != "input":
                raise UnsupportedOpError(f"gemm target: node {node.name!r}: only the network input may be quantised")
            if plan is not None:
                raise UnsupportedOpError("gemm target: the graph has more than one quantised input")
            shape = tuple(node.type.shape)
            plan = GemmPlan(src.name, float(node.attrs["scale"]), int(node.attrs["bits"]), shape)
            values[node.name] = _Value(-1, np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape))
            continue
        if plan is None:
            raise UnsupportedOpError(f"gemm target: node {node.name!r} ({op}) comes before the input is quantised")
        if op in ("flatten", "reshape"):
            val = values[node.inputs[0]]
            values[node.name] = _Value(val.source, val.phys.reshape(tuple(node.type.shape)))
        elif op in ("qlinear", "qconv2d"):
            val = values[node.inputs[0]]
            expected_source = len(plan.layers) - 1
            if val.source != expected_source:
                raise UnsupportedOpError(
                    f"gemm target: node {node.name!r} reads a value that is not the previous layer's output; "
                    "the accelerator runs a chain of layers")
            weight = np.asarray(graph.constants[graph.node(node.inputs[1]).attrs["key"]])
            bias_node = node.inputs[2] if len(node.inputs) > 2 else None
            n_out = int(weight.shape[0])
            bias = graph.constants[graph.node(bias_node).attrs["key"]] if bias_node else None
            if op == "qlinear":
                gather = val.phys.reshape(-1, val.phys.shape[-1])
                out_shape = tuple(node.type.shape)
                out_phys = np.arange(int(np.prod(out_shape)), dtype=np.int64).reshape(out_shape)
                weight2d = weight
            else:
                kh, kw = int(weight.shape[2]), int(weight.shape[3])
                # im2col of the index array; shifting by one turns im2col's zero padding into -1 (read zero)
                gather = im2col(val.phys + 1, kh, kw, tuple(node.attrs["stride"]), tuple(node.attrs["padding"])) - 1
                b, o, oh, ow = (int(d) for d in node.type.shape)
                out_phys = np.arange(b * oh * ow * o, dtype=np.int64).reshape(b, oh, ow, o).transpose(0, 3, 1, 2)
                weight2d = weight.reshape(n_out, -1)
            dense = np.array_equal(gather, np.arange(gather.size, dtype=np.int64).reshape(gather.shape))
            hw_layer = GemmLayer(
                weight=weight2d, bias=bias, multiplier=int(node.attrs["multiplier"]), shift=int(node.attrs["shift"]),
                relu=bool(node.attrs.get("relu", False)), out_bits=int(node.attrs["out_bits"]),
                a_gather=None if dense else gather)
            plan.layers.append(LoweredLayer(node.name, hw_layer, int(gather.shape[0]),
                                            int(node.attrs.get("acc_bits", 32))))
            values[node.name] = _Value(len(plan.layers) - 1, out_phys)
            plan.layer_values[node.name] = (len(plan.layers) - 1, out_phys)
        elif op == "dequantize":
            val = values[node.inputs[0]]
            if val.source < 0:
                raise UnsupportedOpError(f"gemm target: node {node.name!r} dequantises a value no layer computed")
            values[node.name] = val
        elif op == "output":
            prod = graph.node(node.inputs[0])
            if prod.op != "dequantize":
                raise UnsupportedOpError(f"gemm target: output {node.name!r} must come from a dequantize node")
            val = values[prod.name]
            plan.outputs[node.name] = (val.source, val.phys, float(prod.attrs["scale"]))
    if plan is None or not plan.layers:
        raise UnsupportedOpError("gemm target: the graph has no quantised linear or conv2d layer to run")
    return plan


def quantize_input(plan: GemmPlan, x: np.ndarray) -> np.ndarray:
    """Host-side `quantize` of the network input, exactly as the IR's quantize op computes it."""
    return quantize_array(x, plan.input_scale, plan.input_bits)


def hardware_layers(plan: GemmPlan) -> list[GemmLayer]:
    return [lowered.layer for lowered in plan.layers]


def gather_logical(layer_outputs: list[np.ndarray], layer: int, phys: np.ndarray) -> np.ndarray:
    """Read an IR value in its logical layout out of the physical output buffer of ``layer``."""
    flat = np.asarray(layer_outputs[layer]).reshape(-1)
    return flat[phys]


def combination_layer(graph: Graph, node) -> GemmLayer:
    """A fixed-point ``qmatmul_fixed`` node (GCN combination, X @ W.T) as one gemm layer.

    The contract's rescaling ``requantize(acc, 1, frac_in + frac_w - frac_out, relu, out_bits)`` is the gemm
    requantiser with multiplier 1, and a fixed-point bias already carries the accumulator's fraction bits, so
    the layer is the node itself: the array computes it bit for bit when its accumulator is ``acc_bits`` wide.
    """
    if node.op != "qmatmul_fixed":
        raise UnsupportedOpError(f"node {node.name!r} ({node.op}) is not a fixed-point combination (qmatmul_fixed)")
    a = node.attrs
    weight = np.asarray(graph.constant_value(node.inputs[1]), dtype=np.int64)
    bias = np.asarray(graph.constant_value(node.inputs[2]), dtype=np.int64) if len(node.inputs) > 2 else None
    shift = int(a["frac_in"]) + int(a["frac_w"]) - int(a["frac_out"])
    return GemmLayer(weight=weight, bias=bias, multiplier=1, shift=shift, relu=bool(a["relu"]),
                     out_bits=int(a["out_bits"]))
