"""``fuse_relu``: ``relu(linear|conv2d|qlinear|qconv2d)`` becomes the producer with ``relu=True``.

Run it before ``quantize`` so that the layer's output scale is calibrated on post-ReLU values (half the
range is not wasted on negatives that ReLU discards); it also works after quantisation, where the integer
requantiser's "ReLU then saturate" equals saturate followed by an int ReLU. Only fuses when the ReLU is the
producer's single user, so no other consumer loses the negative values.
"""

from __future__ import annotations

from hwforge.compiler.passes.base import Calibration, register_pass
from hwforge.ir import Graph

FUSABLE = ("linear", "conv2d", "qlinear", "qconv2d")


@register_pass
class FuseRelu:
    name = "fuse_relu"

    def run(self, graph: Graph, calibration: Calibration | None = None) -> Graph:
        g = graph.copy()
        for node in g.nodes():
            if node.op != "relu":
                continue
            prod = g[node.inputs[0]]
            if prod.op in FUSABLE and g.users(prod.name) == [node.name]:
                prod.attrs["relu"] = True
                g.replace_uses(node.name, prod.name)
                g.remove_node(node.name)
        return g
