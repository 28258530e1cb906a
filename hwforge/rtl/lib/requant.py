"""Requantiser: accumulator + bias -> output integer, bit-exact with `hwforge.ir.quant.requantize`.

``y = sat_out((wrap_acc(acc + bias) * multiplier + 2**(shift-1)) >> shift)`` with ReLU before saturation and no
rounding term when ``shift == 0``. Two pipeline stages (sum and product, then round/shift/clamp) keep the
multiplier and the barrel shifter in separate cycles; a ``tag`` rides along so callers need not track latency.
``pipelined=True`` gives every step its own cycle (input register, sum, product, rounding add, shift/ReLU/clamp:
`PIPELINED_LATENCY`), for designs that must close timing at high clock rates (the gemm accelerator, whose
accumulator comes straight out of block RAM).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwforge.ir.quant import MAX_SHIFT, MULT_BITS, qrange

LATENCY = 2
"""Cycles from ``i_valid`` to ``o_valid``."""

PIPELINED_LATENCY = 5
"""The same for ``Requantizer(..., pipelined=True)``."""


class Requantizer(wiring.Component):
    """Pipelined requantiser with latency `LATENCY` (`PIPELINED_LATENCY` with ``pipelined``); per-layer
    ``multiplier``/``shift``/``relu`` are inputs."""

    def __init__(self, acc_width: int, out_bits: int, tag_width: int = 16, pipelined: bool = False):
        self.acc_width = acc_width
        self.out_bits = out_bits
        self.pipelined = pipelined
        self.latency = PIPELINED_LATENCY if pipelined else LATENCY
        super().__init__({
            "i_valid": In(1), "i_acc": In(signed(acc_width)), "i_bias": In(signed(32)),
            "i_tag": In(unsigned(tag_width)),
            "multiplier": In(unsigned(MULT_BITS)), "shift": In(unsigned(6)), "relu": In(1),
            "o_valid": Out(1), "o_data": Out(signed(out_bits)), "o_tag": Out(unsigned(tag_width)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        aw = self.acc_width
        deep = self.pipelined
        valid, tag = self.i_valid, self.i_tag

        def stage(*values):
            """Register ``values`` (and the valid/tag pipeline) when pipelined; pass them through otherwise."""
            nonlocal valid, tag
            if not deep:
                return values if len(values) > 1 else values[0]
            regs = [Signal.like(v) for v in values]
            v, t = Signal(), Signal.like(self.i_tag)
            m.d.sync += [*(r.eq(x) for r, x in zip(regs, values, strict=True)), v.eq(valid), t.eq(tag)]
            valid, tag = v, t
            return regs if len(regs) > 1 else regs[0]

        acc, bias = stage(self.i_acc, self.i_bias)
        total = Signal(signed(aw))
        m.d.comb += total.eq(acc + bias)   # truncation = two's-complement wrap at acc_width
        total = stage(total)
        prod = Signal(signed(aw + MULT_BITS + 1))
        v1, tag1 = Signal(), Signal.like(self.i_tag)
        m.d.sync += [prod.eq(total * self.multiplier), v1.eq(valid), tag1.eq(tag)]
        valid, tag = v1, tag1

        width = aw + MULT_BITS + 2
        rnd = Signal(unsigned(MAX_SHIFT + 1))
        m.d.comb += rnd.eq(Mux(self.shift == 0, 0, (Const(1, MAX_SHIFT + 1) << self.shift) >> 1))
        rounded = Signal(signed(width))
        m.d.comb += rounded.eq(prod + rnd)
        rounded = stage(rounded)
        shifted = Signal(signed(width))
        m.d.comb += shifted.eq(rounded >> self.shift)
        lo, hi = qrange(self.out_bits)
        relu_v = Signal(signed(width))
        m.d.comb += relu_v.eq(Mux(self.relu & (shifted < 0), 0, shifted))
        sat = Mux(relu_v > hi, hi, Mux(relu_v < lo, lo, relu_v))
        m.d.sync += [self.o_data.eq(sat), self.o_valid.eq(valid), self.o_tag.eq(tag)]
        return m
