"""`LoadUnit`: moves operand tiles and biases from memory into the gemm accelerator's double-buffered buffers.

It runs load instructions (`hwforge.rtl.gemm.isa.LOAD_LAYOUT`) in order, each into one bank of one buffer:

- **Contiguous tiles** (A rows without a gather table, every B tile): one `DmaReader` command per tile row,
  ``reads_in_flight`` reads outstanding, and each returned word unpacked in one cycle into all the lanes it
  covers. Along a lane (OS A, B tiles) the elements of a word that fall into one buffer word are rotated into
  their slots and written under a mask; across lanes (WS activations, ``cross``) each lane takes one element.
- **Gathered tiles** (im2col, layout changes): a second `DmaReader` streams the tile's gather-table rows; each
  index becomes a one-word command for the operand DMA unless it falls into the word the previous index
  already fetched (runs of neighbouring elements share one read), or is -1 (zero padding, no read). A small
  queue tells the unpacker, per element, whether to take a new word and which lane of it. So a gathered tile
  costs about one cycle per element with many reads in flight, instead of two memory round trips per element.
- **Biases**: one command of ``row_len`` words into the bias registers of the bank.

Before writing a bank the unit takes that buffer's *free* token, and it gives the *ready* token once the tile
(for B: the tile and, when it follows, its bias) is in; see `hwforge.rtl.gemm.isa`.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hwforge.rtl.gemm.config import GemmConfig
from hwforge.rtl.gemm.isa import BIAS_BITS, DIM, LOAD_A, LOAD_B, LOAD_BIAS, LOAD_LAYOUT
from hwforge.rtl.lib.dma import DmaReader
from hwforge.rtl.lib.memport import MemPortSignature

#: Gathered elements whose reads may be in flight between the index stage and the unpacker.
GATHER_QUEUE = 16


def _min(a, b):
    return Mux(a < b, a, b)


def _enter(m: Module, instr) -> None:
    """Both stages run an instruction in the state of its kind: BIAS, GATHER (indexed A) or ROWS (contiguous)."""
    with m.If(instr.target == LOAD_BIAS):
        m.next = "BIAS"
    with m.Elif(instr.gather):
        m.next = "GATHER"
    with m.Else():
        m.next = "ROWS"


def bank_geometry(cfg: GemmConfig) -> tuple[int, int]:
    """``(word address bits, element address bits)`` of one operand-buffer bank (``op_depth`` elements,
    rounded up to a power of two of words so that the bank number is the address's top bit)."""
    lg = ceil_log2(cfg.per_word)
    word_bits = ceil_log2(-(-cfg.op_depth // cfg.per_word))
    return word_bits, word_bits + lg


class LoadUnit(wiring.Component):
    """Operand and bias loader; ports are the instruction stream, two memory ports, buffer writes and tokens."""

    def __init__(self, cfg: GemmConfig, fault: str | None = None):
        self.cfg = cfg
        self.fault = fault
        R, C, W, P = cfg.rows, cfg.cols, cfg.width, cfg.per_word
        word_bits, _ = bank_geometry(cfg)
        aw = max(1, word_bits + 1)
        port = MemPortSignature(32, cfg.bus_width)
        super().__init__({
            "instr": In(stream.Signature(LOAD_LAYOUT)),
            "data_mem": Out(port), "index_mem": Out(port),
            "loading_a": Out(1),
            "a_w_en": Out(P).array(R), "a_w_addr": Out(unsigned(aw)).array(R), "a_w_data": Out(P * W).array(R),
            "b_w_en": Out(P).array(C), "b_w_addr": Out(unsigned(aw)).array(C), "b_w_data": Out(P * W).array(C),
            "bias_w_en": Out(1).array(C), "bias_w_addr": Out(BIAS_BITS), "bias_w_data": Out(signed(32)),
            "a_free": In(1), "a_free_pop": Out(1), "b_free": In(1), "b_free_pop": Out(1),
            "a_ready_push": Out(1), "b_ready_push": Out(1),
            "idle": Out(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self.cfg
        R, C, W, P, CB = cfg.rows, cfg.cols, cfg.width, cfg.per_word, cfg.container_bits
        lg = ceil_log2(P)
        word_bits, _ = bank_geometry(cfg)
        m.submodules.dma = dma = DmaReader(32, cfg.bus_width, cfg.reads_in_flight, len_width=DIM,
                                           fault="reorder" if self.fault == "dma_reorder" else None)
        m.submodules.idx_dma = idx = DmaReader(32, cfg.bus_width, cfg.reads_in_flight, len_width=DIM)
        wiring.connect(m, dma.mem, wiring.flipped(self.data_mem))
        wiring.connect(m, idx.mem, wiring.flipped(self.index_mem))

        # ---- two stages joined by a queue of instructions -------------------------------------------------------
        # issue: takes instructions and sends their DMA commands (operand rows, gather indices, biases) as soon as
        #   the engines accept them, so one tile's reads are in flight while the previous tile is still unpacked;
        # unpack: takes the queue's head once the target buffer's free token is there and writes what returns.
        # Both stages see the instructions in the same order and the engines answer in order, so the words that
        # come back always belong to the tile being unpacked.
        m.submodules.pending = pend = SyncFIFO(width=LOAD_LAYOUT.size, depth=2)
        iss = Signal(LOAD_LAYOUT)                  # the instruction whose commands are being issued
        ins = Signal(LOAD_LAYOUT)                  # the instruction being unpacked
        head = data.View(LOAD_LAYOUT, pend.r_data)
        is_a = Signal()
        m.d.comb += is_a.eq(ins.target == LOAD_A)
        # requests are classed by the command they belong to: the class changes when a command is accepted
        cmd_is_a = Signal()
        m.d.comb += self.loading_a.eq(cmd_is_a)
        cross = ins.cross
        li, lj = Signal(DIM), Signal(DIM)          # unpacker: row and element within the row
        row_e = Signal(32)                         # element index of the current row's first element
        off = Signal(max(1, lg))                   # lane of the next element within the current DMA word
        dma_row_e = Signal(32)                     # issue side: next row's first element

        # ---- unpacking a DMA word: up to P elements a cycle ---------------------------------------------------
        elems = Array([Signal(signed(W), name=f"word_elem{j}") for j in range(P)])
        for j in range(P):
            m.d.comb += elems[j].eq(dma.data.payload.data.word_select(j, CB)[:W])
        slot0 = lj[:lg] if lg else Const(0, 1)
        avail_mem, avail_buf = Signal(range(P + 1)), Signal(range(P + 1))
        # ``rem`` (elements left in the row) and ``li_last`` (the row is the tile's last) are kept in registers
        # rather than derived from ``lj``/``li`` each cycle: that keeps subtract-and-compare chains off the path
        # from a returning word to the buffer write and the DMA's ``ready``.
        # ``rem_small`` (rem <= P) is kept beside it, so that comparing rem with the few elements a word can
        # give is a compare of lg+1 bits, not of DIM bits.
        rem, count, c1 = Signal(DIM), Signal(range(P + 1)), Signal(range(P + 1))
        rem_small, row_small = Signal(), Signal()    # rem <= P; the instruction's row_len <= P
        rem_lo = rem[:lg + 1]
        li_last = Signal()
        row_end = Signal()                           # the row's last elements are in this word
        m.d.comb += [avail_mem.eq(P - off), avail_buf.eq(Mux(cross, P, P - slot0)),
                     c1.eq(_min(avail_mem, avail_buf)),
                     count.eq(Mux(rem_small & (rem_lo < c1), rem_lo, c1)), row_end.eq(rem_small & (rem_lo <= c1))]
        wd_en = Signal()
        wd_mask, wd_data = Signal(P), Signal(P * W)
        shift = Signal(max(1, lg))
        m.d.comb += shift.eq(off - slot0)
        for sl in range(P):
            m.d.comb += [wd_mask[sl].eq((sl >= slot0) & (sl < slot0 + count)),
                         wd_data.word_select(sl, W).eq(elems[(sl + shift)[:lg] if lg else 0])]
        st_en, st_val = Signal(), Signal(signed(W))   # one gathered element

        def onehot(index):
            return (Const(1, P) << index)[:P]

        single = Cat(*([st_val] * P))
        dest_w = ins.dest >> lg        # the tile's first buffer word (``dest`` is a multiple of per_word)
        along_addr = Signal(word_bits + 1)
        cross_addr = Signal(word_bits + 1)
        m.d.comb += [along_addr.eq(dest_w + (lj >> lg)), cross_addr.eq(dest_w + (li >> lg))]
        for r in range(R):
            xj = Signal(DIM, name=f"xj{r}")   # this lane's element index within the word's run (cross mode)
            m.d.comb += xj.eq(r - lj)
            x_en = wd_en & (r >= lj) & (xj < count)
            x_val = elems[(off + xj)[:lg] if lg else 0]
            with m.If(cross):
                m.d.comb += [self.a_w_en[r].eq(Mux(is_a & (x_en | (st_en & (lj == r))), onehot(li[:lg]), 0)),
                             self.a_w_addr[r].eq(cross_addr),
                             self.a_w_data[r].eq(Mux(x_en, Cat(*([x_val] * P)), single))]
            with m.Else():
                m.d.comb += [self.a_w_en[r].eq(Mux(is_a & (li == r), Mux(wd_en, wd_mask, Mux(st_en, onehot(slot0), 0)),
                                                   0)),
                             self.a_w_addr[r].eq(along_addr),
                             self.a_w_data[r].eq(Mux(wd_en, wd_data, single))]
        is_b = ins.target == LOAD_B
        for c in range(C):
            m.d.comb += [self.b_w_en[c].eq(Mux(is_b & (li == c), Mux(wd_en, wd_mask, 0), 0)),
                         self.b_w_addr[c].eq(along_addr),
                         self.b_w_data[c].eq(wd_data)]

        # ---- command queues between the issue stage and the two DMA engines --------------------------------
        # Why: an engine accepts a command in the cycle its previous command's last request leaves, which depends
        # on the memory port's ready through the arbiter. Feeding the engines from 2-deep queues cuts that chain
        # off the issue stage's address arithmetic (one cycle more command latency, the same throughput), which
        # is what lets the unit close timing at 100 MHz on the ECP5.
        cmd_layout = data.StructLayout({"base": 32, "length": DIM, "is_a": 1})
        m.submodules.data_cmds = dq = SyncFIFO(width=cmd_layout.size, depth=2)
        m.submodules.index_cmds = iq = SyncFIFO(width=cmd_layout.size, depth=2)
        dq_in, iq_in = Signal(cmd_layout), Signal(cmd_layout)
        dq_head, iq_head = data.View(cmd_layout, dq.r_data), data.View(cmd_layout, iq.r_data)
        m.d.comb += [dq.w_data.eq(dq_in), iq.w_data.eq(iq_in), dq_in.is_a.eq(iss.target == LOAD_A)]
        for q, head_cmd, engine in ((dq, dq_head, dma), (iq, iq_head, idx)):
            m.d.comb += [engine.cmd.valid.eq(q.r_rdy), engine.cmd.payload.base.eq(head_cmd.base),
                         engine.cmd.payload.length.eq(head_cmd.length), q.r_en.eq(engine.cmd.ready)]
        with m.If(dma.cmd.valid & dma.cmd.ready):
            m.d.sync += cmd_is_a.eq(dq_head.is_a)

        # ---- gather: index stream -> a register stage -> one-word operand reads (coalesced) + a queue of
        # (new word, lane, zero) for the unpacker. The register stage holds one index with its word address
        # already computed, so the coalescing compare and the issue decision start from flip-flops.
        m.submodules.equeue = eq = SyncFIFO(width=2 + max(1, lg), depth=GATHER_QUEUE)
        g_cmds_left = Signal(DIM)          # gather-table rows still to request
        g_rows_left = Signal(DIM)          # gather rows whose indices are not all turned into reads yet
        g_row = Signal(32)                 # word address of the next gather row
        last_word, last_ok = Signal(32), Signal()
        held = Signal(cfg.bus_width)       # the operand word the unpacker fetched last
        index = Signal(signed(32))
        m.d.comb += index.eq(idx.data.payload.data[:32])
        g_valid, g_zero, g_end = Signal(), Signal(), Signal()
        g_word, g_lane = Signal(32), Signal(max(1, lg))
        new_word = Signal()
        m.d.comb += new_word.eq(~g_zero & ~(last_ok & (last_word == g_word)))
        e_zero, e_new, e_lane = eq.r_data[0], eq.r_data[1], eq.r_data[2:]
        rows_left = Signal(DIM)                        # ROWS: tile rows whose command is not queued yet
        dma_row_end = Signal(32)                       # ROWS: element index of the next row's last element

        m.d.comb += [self.bias_w_addr.eq(ins.dest), self.bias_w_data.eq(dma.data.payload.data[:32])]
        issuing, unpacking = Signal(), Signal()
        m.d.comb += self.idle.eq(~issuing & ~unpacking & ~pend.r_rdy & ~dq.r_rdy & ~iq.r_rdy & dma.idle & idx.idle
                                 & ~eq.r_rdy)

        with m.FSM(name="issue"):
            with m.State("IDLE"):
                p = self.instr.payload
                m.d.comb += [self.instr.ready.eq(pend.w_rdy), pend.w_en.eq(self.instr.valid),
                             pend.w_data.eq(p.as_value())]
                with m.If(self.instr.valid & pend.w_rdy):
                    m.d.sync += [iss.eq(p), dma_row_e.eq(p.first), dma_row_end.eq(p.first + p.row_len - 1),
                                 rows_left.eq(p.rows), g_cmds_left.eq(p.rows), g_rows_left.eq(p.rows),
                                 g_row.eq(p.gbase), last_ok.eq(0), g_valid.eq(0), issuing.eq(1)]
                    _enter(m, p)
            with m.State("ROWS"):
                first_w = dma_row_e >> lg
                m.d.comb += [dq.w_en.eq(rows_left != 0), dq_in.base.eq(iss.base + first_w),
                             dq_in.length.eq((dma_row_end >> lg) - first_w + 1)]
                with m.If(dq.w_en & dq.w_rdy):
                    m.d.sync += [rows_left.eq(rows_left - 1), dma_row_e.eq(dma_row_e + iss.stride),
                                 dma_row_end.eq(dma_row_end + iss.stride)]
                with m.If((rows_left == 0) | ((rows_left == 1) & dq.w_rdy)):
                    m.d.sync += issuing.eq(0)
                    m.next = "IDLE"
            with m.State("BIAS"):
                m.d.comb += [dq.w_en.eq(1), dq_in.base.eq(iss.base), dq_in.length.eq(iss.row_len)]
                with m.If(dq.w_rdy):
                    m.d.sync += issuing.eq(0)
                    m.next = "IDLE"
            with m.State("GATHER"):
                # index rows requested through the index DMA
                m.d.comb += [iq.w_en.eq(g_cmds_left != 0), iq_in.base.eq(g_row), iq_in.length.eq(iss.row_len)]
                with m.If(iq.w_en & iq.w_rdy):
                    m.d.sync += [g_cmds_left.eq(g_cmds_left - 1), g_row.eq(g_row + iss.gstride)]
                # the held index: a one-word operand read when it starts a new word, and a queue entry
                go = Signal()
                m.d.comb += [go.eq(g_valid & eq.w_rdy & (~new_word | dq.w_rdy)), eq.w_en.eq(go),
                             eq.w_data.eq(Cat(g_zero, new_word, g_lane)),
                             dq.w_en.eq(g_valid & eq.w_rdy & new_word), dq_in.base.eq(g_word), dq_in.length.eq(1),
                             idx.data.ready.eq(~g_valid | go)]
                with m.If(idx.data.valid & idx.data.ready):
                    m.d.sync += [g_valid.eq(1), g_word.eq(iss.base + (index >> lg)), g_zero.eq(index < 0),
                                 g_lane.eq(index[:lg] if lg else 0), g_end.eq(idx.data.payload.last)]
                with m.Elif(go):
                    m.d.sync += g_valid.eq(0)
                with m.If(go & new_word):
                    m.d.sync += [last_word.eq(g_word), last_ok.eq(1)]
                with m.If(go & g_end):
                    m.d.sync += g_rows_left.eq(g_rows_left - 1)
                with m.If((g_rows_left == 0) | (go & g_end & (g_rows_left == 1))):
                    m.d.sync += issuing.eq(0)
                    m.next = "IDLE"

        def finish() -> None:
            """The tile's last element is written this cycle: hand over the ready token, take the next one."""
            with m.If(ins.push_ready):
                m.d.comb += [self.a_ready_push.eq(is_a), self.b_ready_push.eq(~is_a)]
            m.d.sync += unpacking.eq(0)
            m.next = "IDLE"

        with m.FSM(name="unpack"):
            with m.State("IDLE"):
                wait_a = head.pop_free & (head.target == LOAD_A) & ~self.a_free
                wait_b = head.pop_free & (head.target == LOAD_B) & ~self.b_free
                take = Signal()
                m.d.comb += [take.eq(pend.r_rdy & ~wait_a & ~wait_b), pend.r_en.eq(take)]
                with m.If(take):
                    m.d.comb += [self.a_free_pop.eq(head.pop_free & (head.target == LOAD_A)),
                                 self.b_free_pop.eq(head.pop_free & (head.target == LOAD_B))]
                    m.d.sync += [ins.eq(head), li.eq(0), lj.eq(0), row_e.eq(head.first), rem.eq(head.row_len),
                                 rem_small.eq(head.row_len <= P), row_small.eq(head.row_len <= P),
                                 li_last.eq(head.rows <= 1),
                                 off.eq(head.first[:lg] if lg else 0), unpacking.eq(1)]
                    _enter(m, head)
            with m.State("ROWS"):
                with m.If(dma.data.valid):
                    m.d.comb += [wd_en.eq(1), dma.data.ready.eq(row_end | (count == avail_mem))]
                    with m.If(row_end):
                        nxt = row_e + ins.stride
                        m.d.sync += [lj.eq(0), li.eq(li + 1), row_e.eq(nxt), off.eq(nxt[:lg] if lg else 0),
                                     rem.eq(ins.row_len), rem_small.eq(row_small), li_last.eq(li + 2 >= ins.rows)]
                        with m.If(li_last):
                            finish()
                    with m.Else():
                        # rem - count <= P  <=>  rem <= P + count (< 2^(lg+2))
                        m.d.sync += [lj.eq(lj + count), off.eq(off + count), rem.eq(rem - count),
                                     rem_small.eq((rem >> (lg + 2) == 0) & (rem[:lg + 2] <= P + count))]
            with m.State("GATHER"):
                # one element a cycle into the A buffer
                fetched = Signal(cfg.bus_width)
                m.d.comb += fetched.eq(Mux(e_new, dma.data.payload.data, held))
                with m.If(eq.r_rdy & (~e_new | dma.data.valid)):
                    lane_val = fetched.word_select(e_lane, CB)[:W] if lg else fetched[:W]
                    m.d.comb += [eq.r_en.eq(1), dma.data.ready.eq(e_new), st_en.eq(1),
                                 st_val.eq(Mux(e_zero, 0, lane_val))]
                    with m.If(e_new):
                        m.d.sync += held.eq(dma.data.payload.data)
                    with m.If(rem != 1):
                        m.d.sync += [lj.eq(lj + 1), rem.eq(rem - 1)]
                    with m.Else():
                        m.d.sync += [lj.eq(0), li.eq(li + 1), rem.eq(ins.row_len), li_last.eq(li + 2 >= ins.rows)]
                        with m.If(li_last):
                            finish()
            with m.State("BIAS"):
                with m.If(dma.data.valid):
                    m.d.comb += dma.data.ready.eq(1)
                    for c in range(C):
                        m.d.comb += self.bias_w_en[c].eq(li == c)
                    m.d.sync += [li.eq(li + 1), rem.eq(rem - 1)]
                    with m.If(rem == 1):
                        finish()
        return m
