"""Banked on-chip buffer: one `amaranth.lib.memory.Memory` per lane, each with its own read and write port.

Systolic arrays need one operand per row (or column) per cycle, each at a different (skewed) address, so the
buffers are banked by lane rather than being one wide memory. Reads are synchronous (block-RAM friendly): data
appears the cycle after the address.
"""

from __future__ import annotations

from amaranth.hdl import Module, ShapeCastable, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hwforge.rtl.lib.checks import refuse


class LaneBuffer(wiring.Component):
    """``lanes`` independent memories of ``depth`` entries of ``shape``; per-lane write and read ports."""

    def __init__(self, lanes: int, depth: int, shape: ShapeCastable):
        if lanes < 1 or depth < 1:
            refuse(self, f"lanes ({lanes}) and depth ({depth}) must be positive")
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


class PackedLaneBuffer(wiring.Component):
    """`LaneBuffer` whose lanes store ``pack`` consecutive elements per memory word, so a loader can write up to
    ``pack`` elements of one lane in one cycle (a whole bus word of a contiguous operand row).

    Writes are word-wide with one enable per element (``w_en[lane]`` has ``pack`` bits; ``w_addr`` is the word
    address, element ``a`` lives in word ``a // pack``, slot ``a % pack``; ``w_data`` holds ``pack`` elements,
    slot 0 in the low bits). Reads stay element-wide and synchronous, as in `LaneBuffer`: ``r_addr`` is an
    element address and ``r_data`` shows that element the next cycle (the slot is registered with the address).
    """

    def __init__(self, lanes: int, depth: int, width: int, pack: int):
        problem = None
        if lanes < 1 or depth < 1 or width < 1:
            problem = f"lanes ({lanes}), depth ({depth}) and width ({width}) must be positive"
        elif pack < 1 or pack & (pack - 1):
            problem = f"pack must be a power of two, got {pack}"
        if problem:
            refuse(self, problem)
        self.lanes, self.width, self.pack = lanes, width, pack
        self.slot_bits = ceil_log2(pack)
        self.words = -(-depth // pack)
        self.depth = self.words * pack
        aw = max(1, ceil_log2(self.depth))
        self.addr_width = aw
        super().__init__({
            "w_en": In(pack).array(lanes),
            "w_addr": In(unsigned(max(1, ceil_log2(self.words)))).array(lanes),
            "w_data": In(unsigned(pack * width)).array(lanes),
            "r_addr": In(unsigned(aw)).array(lanes),
            "r_data": Out(signed(width)).array(lanes),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        lg = self.slot_bits
        for i in range(self.lanes):
            mem = Memory(shape=unsigned(self.pack * self.width), depth=self.words, init=[])
            m.submodules[f"lane{i}"] = mem
            wp = mem.write_port(granularity=self.width)
            rp = mem.read_port(transparent_for=())
            slot = Signal(max(1, lg), name=f"slot{i}")
            m.d.sync += slot.eq(self.r_addr[i][:lg] if lg else 0)
            m.d.comb += [
                wp.en.eq(self.w_en[i]), wp.addr.eq(self.w_addr[i]), wp.data.eq(self.w_data[i]),
                rp.addr.eq(self.r_addr[i] >> lg),
                self.r_data[i].eq(rp.data.word_select(slot, self.width) if lg else rp.data),
            ]
        return m
