"""Banked on-chip buffer: one `amaranth.lib.memory.Memory` per lane, each with its own read and write port.

Systolic arrays need one operand per row (or column) per cycle, each at a different (skewed) address, so the
buffers are banked by lane rather than being one wide memory. Reads are synchronous (block-RAM friendly): data
appears the cycle after the address.
"""

from __future__ import annotations

from amaranth.hdl import Module, ShapeCastable, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hwforge.errors import ConfigError


class LaneBuffer(wiring.Component):
    """``lanes`` independent memories of ``depth`` entries of ``shape``; per-lane write and read ports."""

    def __init__(self, lanes: int, depth: int, shape: ShapeCastable):
        if lanes < 1 or depth < 1:
            raise ConfigError(f"LaneBuffer: lanes ({lanes}) and depth ({depth}) must be positive")
        self.lanes = lanes
        self.depth = depth
        self.shape = shape
        aw = max(1, ceil_log2(depth))
        self.addr_width = aw
        super().__init__({
            "w_en": In(1).array(lanes),
            "w_addr": In(unsigned(aw)).array(lanes),
            "w_data": In(shape).array(lanes),
            "r_addr": In(unsigned(aw)).array(lanes),
            "r_data": Out(shape).array(lanes),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        for i in range(self.lanes):
            mem = Memory(shape=self.shape, depth=self.depth, init=[])
            m.submodules[f"lane{i}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(transparent_for=())
            m.d.comb += [
                wp.en.eq(self.w_en[i]), wp.addr.eq(self.w_addr[i]), wp.data.eq(self.w_data[i]),
                rp.addr.eq(self.r_addr[i]), self.r_data[i].eq(rp.data),
            ]
        return m
