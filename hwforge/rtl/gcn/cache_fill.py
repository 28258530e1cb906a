"""The fill engine of the snf feature cache: misses of every bank -> back-to-back line reads on the memory port.

Each bank queues its misses as ``{la, id}`` fill requests. The filler picks a bank round-robin, issues the
line's ``words_per_line`` reads back to back (one per cycle, a single bus word at a 512-bit bus), records
``{bank, id}`` in an in-flight FIFO and moves on to the next miss without waiting: several lines are in
flight at once, bounded by the banks' MSHRs (``cache_banks * mshrs``). Memory answers in request order, so
the words assemble into lines in that order and each line goes back to the bank at the head of the FIFO.
Within a bank, fills therefore complete in the order the bank allocated its MSHRs (`CacheBank` relies on it).

The filler accepts read data as long as its one assembled line is not stuck waiting for its bank; a bank only
waits on the response crossbar, never on memory, so holding the shared response stream is deadlock free.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from hwforge.rtl.gcn.cache_bank import fill_layout, fill_request_layout
from hwforge.rtl.gcn.config import LINE_BITS, SnfConfig
from hwforge.rtl.lib.memport import MemPortSignature


def round_robin(m: Module, valids: list, advance, name: str) -> tuple[Signal, Signal]:
    """(chosen, any): the first valid index at or after a pointer that moves past the winner on ``advance``."""
    n = len(valids)
    chosen = Signal(range(max(2, n)), name=f"{name}_chosen")
    anyv = Signal(name=f"{name}_any")
    for i in reversed(range(n)):
        with m.If(valids[i]):
            m.d.comb += [chosen.eq(i), anyv.eq(1)]
    if n > 1:
        ptr = Signal(range(n), name=f"{name}_ptr")
        for i in reversed(range(n)):
            with m.If(valids[i] & (i >= ptr)):
                m.d.comb += chosen.eq(i)
        with m.If(advance):
            m.d.sync += ptr.eq(Mux(chosen == n - 1, 0, chosen + 1))
    return chosen, anyv


class LineFiller(wiring.Component):
    def __init__(self, cfg: SnfConfig):
        self.cfg = cfg
        B = cfg.cache_banks
        super().__init__({
            "req": In(stream.Signature(fill_request_layout(cfg))).array(B),
            "fill": Out(stream.Signature(fill_layout(cfg))).array(B),
            "mem": Out(MemPortSignature(32, cfg.bus_width)),
            "x_base": In(32),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        B, wpl, bw = cfg.cache_banks, cfg.words_per_line, cfg.bus_width
        idb = max(1, ceil_log2(cfg.mshrs))
        tag_l = data.StructLayout({"bank": range(max(2, B)), "id": idb})
        m.submodules.inflight = inflight = SyncFIFOBuffered(width=tag_l.size, depth=max(2, B * cfg.mshrs))

        # ---- issue ---------------------------------------------------------------------------------------------
        k = Signal(range(wpl + 1))                 # words of the current line issued
        locked = Signal()                          # in the middle of a line: keep the bank
        lock_bank = Signal(range(max(2, B)))
        line_done = Signal()
        chosen, anyv = round_robin(m, [self.req[b].valid for b in range(B)], line_done, "fill_rr")
        bank = Signal(range(max(2, B)))
        m.d.comb += bank.eq(Mux(locked, lock_bank, chosen))
        la = Signal.like(self.req[0].payload.la)
        rid = Signal(idb)
        has = Signal()
        with m.Switch(bank):
            for b in range(B):
                with m.Case(b):
                    m.d.comb += [la.eq(self.req[b].payload.la), rid.eq(self.req[b].payload.id),
                                 has.eq(self.req[b].valid)]
        # the in-flight record is pushed with the line's first word, so it needs room then
        first = k == 0
        m.d.comb += [self.mem.req.valid.eq(has & (~first | inflight.w_rdy)),
                     self.mem.req.payload.addr.eq(self.x_base + (la << exact_log2(wpl)) + k),
                     self.mem.req.payload.write.eq(0)]
        fire = Signal()
        m.d.comb += fire.eq(self.mem.req.valid & self.mem.req.ready)
        tag_w = tag_l(inflight.w_data)
        m.d.comb += [tag_w.bank.eq(bank), tag_w.id.eq(rid), inflight.w_en.eq(fire & first),
                     line_done.eq(fire & (k == wpl - 1))]
        with m.If(fire):
            m.d.sync += [k.eq(k + 1), locked.eq(1), lock_bank.eq(bank)]
            with m.If(line_done):
                m.d.sync += [k.eq(0), locked.eq(0)]
        for b in range(B):
            m.d.comb += self.req[b].ready.eq(line_done & (bank == b))

        # ---- assemble and deliver --------------------------------------------------------------------------------
        acc = Signal(LINE_BITS)
        got = Signal(range(wpl + 1))
        full = Signal()
        m.d.comb += full.eq(got == wpl)
        tag_r = tag_l(inflight.r_data)
        deliver = Signal()
        for b in range(B):
            m.d.comb += [self.fill[b].valid.eq(full & inflight.r_rdy & (tag_r.bank == b)),
                         self.fill[b].payload.id.eq(tag_r.id), self.fill[b].payload.data.eq(acc)]
            with m.If(self.fill[b].valid & self.fill[b].ready):
                m.d.comb += deliver.eq(1)
        m.d.comb += [inflight.r_en.eq(deliver), self.mem.resp.ready.eq(~full | deliver)]
        take = Signal()
        m.d.comb += take.eq(self.mem.resp.valid & self.mem.resp.ready)
        m.d.sync += got.eq(Mux(deliver, 0, got) + take)
        with m.If(take):
            m.d.sync += acc.eq(Cat(acc[bw:], self.mem.resp.payload) if wpl > 1 else self.mem.resp.payload)
        return m
