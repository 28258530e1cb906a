"""Multiply-accumulate processing elements for systolic arrays.

Two cells, one per dataflow, because what stays put differs:

- `OSProcessingElement` keeps its accumulator (output-stationary); operands pass through to the right (A) and
  down (B). A ``drain`` cycle shifts accumulators down the column so results leave through the bottom edge
  without a wide read-out mux.
- `WSProcessingElement` keeps a weight (weight-stationary); activations pass right and partial sums flow
  down. ``load_w`` shifts weights down the column so a column is preloaded in ``rows`` cycles.

Accumulators are ``acc_width`` two's-complement registers that wrap, matching `hwforge.ir.quant.int_matmul`.

Both cells register the product before adding it (`PRODUCT_LATENCY`): on the ECP5 the multiplier sits in a DSP
column far from the adder's logic, and a multiply, two long routes and a 32-bit carry chain do not fit a 10 ns
cycle, whereas each half does. The array's schedule (`hwforge.rtl.gemm.compute`) accounts for the extra cycle.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

#: Cycles from operands at a cell's inputs to their product in its accumulator / partial-sum register, beyond
#: the one cycle a combinational multiply-add would take.
PRODUCT_LATENCY = 1


class OSProcessingElement(wiring.Component):
    """Output-stationary MAC: ``acc += a_in * b_in`` (one cycle later, through the product register); forwards
    ``a`` right and ``b`` down one cycle later."""

    def __init__(self, width: int, acc_width: int):
        self.width = width
        self.acc_width = acc_width
        super().__init__({
            "a_in": In(signed(width)), "b_in": In(signed(width)),
            "a_out": Out(signed(width)), "b_out": Out(signed(width)),
            "acc_in": In(signed(acc_width)),   # accumulator of the PE above (drain path)
            "acc": Out(signed(acc_width)),
            "clear": In(1), "drain": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        product = Signal(signed(2 * self.width))
        with m.If(self.clear):
            m.d.sync += [self.acc.eq(0), self.a_out.eq(0), self.b_out.eq(0), product.eq(0)]
        with m.Else():
            m.d.sync += [self.a_out.eq(self.a_in), self.b_out.eq(self.b_in), product.eq(self.a_in * self.b_in)]
            with m.If(self.drain):
                m.d.sync += self.acc.eq(self.acc_in)
            with m.Else():
                m.d.sync += self.acc.eq(self.acc + product)
        return m


class WSProcessingElement(wiring.Component):
    """Weight-stationary MAC: ``psum_out <= psum_in + product``, where ``product`` registers ``a_in * w``, so the
    partial sum meets the activation that arrived one cycle before it; ``psum_next`` is the sum before the
    register.

    The bottom row's ``psum_next`` is the column result; taking it combinationally saves the last pipeline
    cycle, which is what makes a fold take ``2R + C + T - 2`` cycles plus `PRODUCT_LATENCY`.
    """

    def __init__(self, width: int, acc_width: int):
        self.width = width
        self.acc_width = acc_width
        super().__init__({
            "a_in": In(signed(width)), "a_out": Out(signed(width)),
            "w_in": In(signed(width)), "w": Out(signed(width)),
            "psum_in": In(signed(acc_width)),
            "psum_out": Out(signed(acc_width)), "psum_next": Out(signed(acc_width)),
            "clear": In(1), "load_w": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        product = Signal(signed(2 * self.width))
        m.d.comb += self.psum_next.eq(self.psum_in + product)
        with m.If(self.load_w):
            m.d.sync += self.w.eq(self.w_in)
        with m.If(self.clear):
            m.d.sync += [self.a_out.eq(0), self.psum_out.eq(0), product.eq(0)]
        with m.Else():
            m.d.sync += [self.a_out.eq(self.a_in), self.psum_out.eq(self.psum_next), product.eq(self.a_in * self.w)]
        return m
