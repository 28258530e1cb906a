"""Multiply-accumulate processing elements for systolic arrays.

Two cells, one per dataflow, because what stays put differs:

- `OSProcessingElement` keeps its accumulator (output-stationary); operands pass through to the right (A) and
  down (B). A ``drain`` cycle shifts accumulators down the column so results leave through the bottom edge
  without a wide read-out mux.
- `WSProcessingElement` keeps a weight (weight-stationary); activations pass right and partial sums flow
  down. ``load_w`` shifts weights down the column so a column is preloaded in ``rows`` cycles.

Accumulators are ``acc_width`` two's-complement registers that wrap, matching `hwforge.ir.quant.int_matmul`.
"""

from __future__ import annotations

from amaranth.hdl import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class OSProcessingElement(wiring.Component):
    """Output-stationary MAC: ``acc += a_in * b_in``; forwards ``a`` right and ``b`` down one cycle later."""

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
        with m.If(self.clear):
            m.d.sync += [self.acc.eq(0), self.a_out.eq(0), self.b_out.eq(0)]
        with m.Else():
            m.d.sync += [self.a_out.eq(self.a_in), self.b_out.eq(self.b_in)]
            with m.If(self.drain):
                m.d.sync += self.acc.eq(self.acc_in)
            with m.Else():
                m.d.sync += self.acc.eq(self.acc + self.a_in * self.b_in)
        return m


class WSProcessingElement(wiring.Component):
    """Weight-stationary MAC: ``psum_out <= psum_in + a_in * w``; ``psum_next`` is that sum before the register.

    The bottom row's ``psum_next`` is the column result; taking it combinationally saves the last pipeline
    cycle, which is what makes a fold take exactly ``2R + C + T - 2`` cycles.
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
        m.d.comb += self.psum_next.eq(self.psum_in + self.a_in * self.w)
        with m.If(self.load_w):
            m.d.sync += self.w.eq(self.w_in)
        with m.If(self.clear):
            m.d.sync += [self.a_out.eq(0), self.psum_out.eq(0)]
        with m.Else():
            m.d.sync += [self.a_out.eq(self.a_in), self.psum_out.eq(self.psum_next)]
        return m
