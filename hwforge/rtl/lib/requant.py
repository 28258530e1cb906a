"""Requantiser: accumulator + bias -> output integer, bit-exact with `hwforge.ir.quant.requantize`.

``y = sat_out((wrap_acc(acc + bias) * multiplier + 2**(shift-1)) >> shift)`` with ReLU before saturation and no
rounding term when ``shift == 0``. Two pipeline stages (sum and product, then round/shift/clamp) keep the
multiplier and the barrel shifter in separate cycles; a ``tag`` rides along so callers need not track latency.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwforge.ir.quant import MAX_SHIFT, MULT_BITS, qrange

LATENCY = 2
"""Cycles from ``i_valid`` to ``o_valid``."""


class Requantizer(wiring.Component):
    """Pipelined requantiser with latency `LATENCY`; per-layer ``multiplier``/``shift``/``relu`` are inputs."""

    def __init__(self, acc_width: int, out_bits: int, tag_width: int = 16):
        self.acc_width = acc_width
        self.out_bits = out_bits
        super().__init__({
            "i_valid": In(1), "i_acc": In(signed(acc_width)), "i_bias": In(signed(32)),
            "i_tag": In(unsigned(tag_width)),
            "multiplier": In(unsigned(MULT_BITS)), "shift": In(unsigned(6)), "relu": In(1),
            "o_valid": Out(1), "o_data": Out(signed(out_bits)), "o_tag": Out(unsigned(tag_width)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        aw = self.acc_width
        total = Signal(signed(aw))
        m.d.comb += total.eq(self.i_acc + self.i_bias)   # truncation = two's-complement wrap at acc_width
        prod = Signal(signed(aw + MULT_BITS + 1))
        v1 = Signal()
        tag1 = Signal.like(self.i_tag)
        m.d.sync += [prod.eq(total * self.multiplier),
                     v1.eq(self.i_valid), tag1.eq(self.i_tag)]

        width = aw + MULT_BITS + 2
        rnd = Signal(unsigned(MAX_SHIFT + 1))
        m.d.comb += rnd.eq(Mux(self.shift == 0, 0, (Const(1, MAX_SHIFT + 1) << self.shift) >> 1))
        rounded = Signal(signed(width))
        m.d.comb += rounded.eq(prod + rnd)
        shifted = Signal(signed(width))
        m.d.comb += shifted.eq(rounded >> self.shift)
        lo, hi = qrange(self.out_bits)
        relu_v = Signal(signed(width))
        m.d.comb += relu_v.eq(Mux(self.relu & (shifted < 0), 0, shifted))
        sat = Mux(relu_v > hi, hi, Mux(relu_v < lo, lo, relu_v))
        m.d.sync += [self.o_data.eq(sat), self.o_valid.eq(v1), self.o_tag.eq(tag1)]
        return m
