"""The gemm accelerator's output side: `PostUnit` requantises accumulator tiles, `StoreUnit` writes rows back.

`PostUnit` reads a finished accumulator bank (the bias is already in it, see `hwforge.rtl.gemm.compute`), one
element a cycle through the pipelined `Requantizer`, into the output staging buffer, where a row block's rows
are assembled, padded to whole memory words. `StoreUnit` writes a complete row block out, one word a cycle.
Both banks of the accumulator buffer and of the staging buffer let the two units work on one tile or row block
while the compute unit fills the next.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hwforge.ir.quant import MULT_BITS
from hwforge.rtl.gemm.compute import acc_addr_bits
from hwforge.rtl.gemm.config import GemmConfig
from hwforge.rtl.gemm.isa import DIM, POST_LAYOUT, STORE_LAYOUT
from hwforge.rtl.lib.memport import MemPortSignature
from hwforge.rtl.lib.requant import PIPELINED_LATENCY, Requantizer


def stage_word_bits(cfg: GemmConfig) -> int:
    """Word-address bits of one staging bank (``out_depth / per_word`` words per lane)."""
    return max(1, (cfg.out_depth // cfg.per_word - 1).bit_length())


class PostUnit(wiring.Component):
    """Accumulator bank -> requantiser -> staging bank, one element a cycle."""

    def __init__(self, cfg: GemmConfig):
        self.cfg = cfg
        C, P = cfg.cols, cfg.per_word
        sw = stage_word_bits(cfg) + 1
        super().__init__({
            "instr": In(stream.Signature(POST_LAYOUT)),
            "multiplier": In(unsigned(MULT_BITS)), "shift": In(unsigned(6)), "relu": In(1),
            "acc_r_addr": Out(unsigned(acc_addr_bits(cfg))), "acc_r_data": In(signed(cfg.acc_width)).array(C),
            "accbank": Out(1), "reading": Out(1),
            "st_w_en": Out(1).array(P), "st_w_addr": Out(unsigned(sw)).array(P),
            "st_w_data": Out(signed(cfg.width)).array(P),
            "acc_ready": In(1), "acc_ready_pop": Out(1), "st_free": In(1), "st_free_pop": Out(1),
            "acc_free_push": Out(1), "st_ready_push": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self.cfg
        C, P = cfg.cols, cfg.per_word
        lg = ceil_log2(P)
        elem_bits = stage_word_bits(cfg) + lg
        m.submodules.requant = rq = Requantizer(cfg.acc_width, cfg.width, tag_width=elem_bits + 1, pipelined=True)
        ins = Signal(POST_LAYOUT)
        pi, pc = Signal(DIM), Signal(6)
        p_elem = Signal(elem_bits)
        v1, c1, tag1 = Signal(), Signal(range(C)), Signal(elem_bits + 1)
        drain = Signal(range(PIPELINED_LATENCY + 2))
        m.d.sync += v1.eq(0)
        m.d.comb += [rq.multiplier.eq(self.multiplier), rq.shift.eq(self.shift), rq.relu.eq(self.relu),
                     rq.i_valid.eq(v1), rq.i_bias.eq(0), rq.i_tag.eq(tag1),
                     self.acc_r_addr.eq(pi), self.accbank.eq(ins.accbank)]
        acc_sel = Signal(signed(cfg.acc_width))
        with m.Switch(c1):
            for c in range(C):
                with m.Case(c):
                    m.d.comb += acc_sel.eq(self.acc_r_data[c])
        m.d.comb += rq.i_acc.eq(acc_sel)
        o_elem = rq.o_tag[:elem_bits]
        for i in range(P):
            m.d.comb += [self.st_w_en[i].eq(rq.o_valid & ((o_elem[:lg] if lg else 0) == i)),
                         self.st_w_addr[i].eq(Cat(o_elem[lg:], rq.o_tag[elem_bits])),
                         self.st_w_data[i].eq(rq.o_data)]

        p = self.instr.payload
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(1)
                with m.If(self.instr.valid & self.acc_ready & (~p.pop_st_free | self.st_free)):
                    m.d.comb += [self.instr.ready.eq(1), self.acc_ready_pop.eq(1),
                                 self.st_free_pop.eq(p.pop_st_free)]
                    m.d.sync += [ins.eq(p), pi.eq(0), pc.eq(0), p_elem.eq(p.col0)]
                    m.next = "ISSUE"
            with m.State("ISSUE"):
                m.d.comb += self.reading.eq(1)
                m.d.sync += [v1.eq(1), c1.eq(pc), tag1.eq(Cat((p_elem + pc)[:elem_bits], ins.stbank))]
                with m.If(pc + 1 < ins.cols):
                    m.d.sync += pc.eq(pc + 1)
                with m.Else():
                    m.d.sync += [pc.eq(0), pi.eq(pi + 1), p_elem.eq(p_elem + ins.npad)]
                    with m.If(pi + 1 >= ins.rows):
                        m.d.comb += self.acc_free_push.eq(1)
                        m.d.sync += drain.eq(0)
                        with m.If(ins.push_st_ready):
                            m.next = "DRAIN"
                        with m.Else():
                            m.next = "IDLE"
            with m.State("DRAIN"):   # the row block's last elements leave the requantiser
                m.d.sync += drain.eq(drain + 1)
                with m.If(drain == PIPELINED_LATENCY):
                    m.d.comb += self.st_ready_push.eq(1)
                    m.next = "IDLE"
        return m


class StoreUnit(wiring.Component):
    """Staging bank -> memory, one word a cycle (a write port: it never reads)."""

    def __init__(self, cfg: GemmConfig):
        self.cfg = cfg
        P = cfg.per_word
        sw = stage_word_bits(cfg) + 1
        super().__init__({
            "instr": In(stream.Signature(STORE_LAYOUT)),
            "mem": Out(MemPortSignature(32, cfg.bus_width)),
            "st_r_addr": Out(unsigned(sw)).array(P), "st_r_data": In(signed(cfg.width)).array(P),
            "st_ready": In(1), "st_ready_pop": Out(1), "st_free_push": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self.cfg
        P, CB = cfg.per_word, cfg.container_bits
        ins = Signal(STORE_LAYOUT)
        ptr, cnt = Signal(32), Signal(32)
        accepted = Signal()   # a word is accepted this cycle: read the next one ahead (1 word per cycle)
        for i in range(P):
            m.d.comb += self.st_r_addr[i].eq(Cat((cnt + accepted)[:stage_word_bits(cfg)], ins.stbank))
        lanes = []
        for i in range(P):
            s = Signal(signed(CB), name=f"wb_lane{i}")
            m.d.comb += s.eq(self.st_r_data[i])
            lanes.append(s)
        req = self.mem.req
        m.d.comb += [req.payload.write.eq(1), req.payload.addr.eq(ptr), req.payload.wdata.eq(Cat(*lanes)),
                     self.mem.resp.ready.eq(0)]
        p = self.instr.payload
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(1)
                with m.If(self.instr.valid & self.st_ready):
                    m.d.comb += [self.instr.ready.eq(1), self.st_ready_pop.eq(1)]
                    m.d.sync += [ins.eq(p), ptr.eq(p.dst), cnt.eq(0)]
                    m.next = "PRIME"
            with m.State("PRIME"):    # the first word's synchronous read
                m.next = "WRITE"
            with m.State("WRITE"):
                m.d.comb += [req.valid.eq(1), accepted.eq(req.ready)]
                with m.If(req.ready):
                    m.d.sync += [cnt.eq(cnt + 1), ptr.eq(ptr + 1)]
                    with m.If(cnt + 1 >= ins.words):
                        m.d.comb += self.st_free_push.eq(1)
                        m.next = "IDLE"
        return m
