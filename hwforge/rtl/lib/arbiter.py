"""Round-robin arbiter that lets several initiators share one memory port (`MemPortSignature`).

Requests are granted round-robin (the port after the last winner has priority). Reads are tagged with the
index of their port in a FIFO, and since the memory answers in request order, the response at the head of the
memory's response stream belongs to the port at the head of that FIFO. Each port carries a traffic-class tag
(``up_class[i]``), forwarded as ``down_class`` with the granted request, for `CountingMemPort`'s per-class
byte counters.

Rule for initiators: a port must always accept its own read responses eventually, without waiting on another
port (responses are delivered strictly in order, so one port that refuses blocks every other one).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hwforge.rtl.lib.memport import MemPortSignature


class MemArbiter(wiring.Component):
    """``n`` initiator ports (``up[i]``, as seen from the initiators) onto one ``down`` port."""

    def __init__(self, n: int, addr_width: int = 32, data_width: int = 32, n_classes: int = 1,
                 max_outstanding: int = 64):
        if n < 1:
            raise ValueError("MemArbiter needs at least one port")
        self.n = n
        self.max_outstanding = max_outstanding
        sig = MemPortSignature(addr_width, data_width)
        cls = range(max(2, n_classes))
        super().__init__({
            "up": In(sig).array(n),
            "up_class": In(cls).array(n),
            "down": Out(sig),
            "down_class": Out(cls),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        n = self.n
        m.submodules.tags = tags = SyncFIFOBuffered(width=max(1, ceil_log2(n)), depth=self.max_outstanding)
        rr = Signal(range(n))
        chosen = Signal(range(n))
        anyv = Signal()
        valids = [self.up[i].req.valid for i in range(n)]
        for i in reversed(range(n)):
            with m.If(valids[i]):
                m.d.comb += [chosen.eq(i), anyv.eq(1)]
        for i in reversed(range(n)):
            with m.If(valids[i] & (i >= rr)):
                m.d.comb += chosen.eq(i)
        down = self.down
        is_write = Signal()
        with m.Switch(chosen):
            for i in range(n):
                with m.Case(i):
                    m.d.comb += [down.req.payload.eq(self.up[i].req.payload), self.down_class.eq(self.up_class[i]),
                                 is_write.eq(self.up[i].req.payload.write)]
        can = Signal()
        m.d.comb += [can.eq(is_write | tags.w_rdy), down.req.valid.eq(anyv & can)]
        for i in range(n):
            m.d.comb += self.up[i].req.ready.eq(down.req.ready & can & anyv & (chosen == i))
        fire = Signal()
        m.d.comb += fire.eq(down.req.valid & down.req.ready)
        with m.If(fire):
            m.d.sync += rr.eq(chosen + 1 if n > 1 else 0)
            if n > 1:
                with m.If(chosen == n - 1):
                    m.d.sync += rr.eq(0)
        m.d.comb += [tags.w_en.eq(fire & ~is_write), tags.w_data.eq(chosen)]
        # responses: route to the port at the head of the tag FIFO
        for i in range(n):
            m.d.comb += [self.up[i].resp.payload.eq(down.resp.payload),
                         self.up[i].resp.valid.eq(down.resp.valid & tags.r_rdy & (tags.r_data == i))]
        with m.Switch(tags.r_data):
            for i in range(n):
                with m.Case(i):
                    m.d.comb += down.resp.ready.eq(tags.r_rdy & self.up[i].resp.ready)
        m.d.comb += tags.r_en.eq(down.resp.valid & down.resp.ready)
        return m
