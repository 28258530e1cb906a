"""`GemmCore`: the sequencer of the gemm accelerator, with its buffers, array and requantiser.

It interprets the program described in `hwforge.rtl.gemm.program` (descriptor words at address 0) one layer at
a time. A layer is tiled into *folds* (one use of the array on one operand tile):

- OS: for each row block of ``R`` rows of A (m0), for each column block of ``C`` outputs (n0): load the A tile
  (only when n0 = 0, since it is reused across n0), the B (weight) tile and the bias, stream ``K`` steps,
  drain the accumulators down the columns, requantise into the output staging buffer.
- WS: for each row chunk of ``m_tile`` rows (m0), for each column block (n0), for each K block of ``R`` (k0):
  preload the weights, stream the chunk's activations, and accumulate partial sums in the accumulator buffer
  (the previous K block's sum enters the top of the column); requantise after the last K block.

After every column block of a row block is done, the staging buffer (whole words) is written back, one word a
cycle. Contiguous operand rows and bias vectors stream in through a `DmaReader` (``reads_in_flight`` reads
outstanding, one command per tile row), unpacked up to a bus word a cycle into word-wide operand buffers
(`PackedLaneBuffer`); gathered A rows (im2col, layout changes) still go one in-order read at a time through a
one-word read cache. The streaming phase itself never touches memory, so it takes a fixed number of cycles; see
`hwforge.rtl.gemm.cycles` for the formula it meets exactly. In OS the weight tile (B) is double-buffered: while
a fold streams, the next fold's weights load into the other bank.
"""

from __future__ import annotations

from contextlib import contextmanager

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hwforge.errors import ConfigError
from hwforge.rtl.gemm.array import SystolicArray
from hwforge.rtl.gemm.config import GemmConfig
from hwforge.rtl.gemm.program import DESC_WORDS, F
from hwforge.rtl.lib.dma import DmaReader
from hwforge.rtl.lib.lanebuf import LaneBuffer, PackedLaneBuffer
from hwforge.rtl.lib.memport import MemPortSignature
from hwforge.rtl.lib.requant import LATENCY, Requantizer

FAULTS = ("flip_acc_bit", "drop_last_fold", "dma_reorder", "early_swap")
"""Deliberately broken variants (for proving the verifier catches errors); ``dma_reorder`` swaps neighbouring words
of every DMA command (`hwforge.rtl.lib.dma`'s ``reorder`` fault); ``early_swap`` prefetches the next fold's weights
into the bank the array is still streaming from (a double-buffer swap one fold early)."""

TRAFFIC_CLASSES = ("features", "weights", "outputs", "control")
"""Traffic classes of ``GemmCore(classes=True)``'s ``req_class`` (names shared with the `snf` accelerator's):
A operands, weights and biases, output write-back, and header/descriptors/gather tables."""
CLS_FEAT, CLS_WEIGHTS, CLS_OUT, CLS_CTRL = range(len(TRAFFIC_CLASSES))

# operand-load modes
OS_A, OS_B, WS_A, WS_B = range(4)


def check_fault(fault: str | None) -> None:
    """Reject unknown fault names with the list of known ones."""
    if fault is not None and fault not in FAULTS:
        raise ConfigError(f"gemm: unknown fault {fault!r}; known faults: {', '.join(FAULTS)}")


def _min(a, b):
    return Mux(a < b, a, b)


class GemmCore(wiring.Component):
    """Controller plus datapath; `GemmAccelerator` adds the memory-traffic counters and the cycle counter.

    ``classes=True`` adds a ``req_class`` output (index into `TRAFFIC_CLASSES`) valid with every memory request,
    for per-class byte counters. It is a constructor flag rather than a `GemmConfig` field so that the default
    design, its Verilog and every config-keyed cache stay exactly as they were.
    """

    def __init__(self, cfg: GemmConfig, fault: str | None = None, classes: bool = False):
        check_fault(fault)
        self.cfg = cfg
        self.fault = fault
        self.classes = classes
        extra = {"req_class": Out(range(len(TRAFFIC_CLASSES)))} if classes else {}
        super().__init__({
            "start": In(1), "done": Out(1), "busy": Out(1),
            "mem": Out(MemPortSignature(32, cfg.bus_width)),
            "compute_cycles": Out(unsigned(32)), "folds": Out(unsigned(32)),
            **extra,
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        R, C, W, AW = cfg.rows, cfg.cols, cfg.width, cfg.acc_width
        P, CB = cfg.per_word, cfg.container_bits
        lg = ceil_log2(P)
        os_flow = cfg.dataflow == "os"
        mem = self.mem

        flip = cfg.acc_width - 2 if self.fault == "flip_acc_bit" else None
        m.submodules.array = arr = SystolicArray(R, C, W, AW, cfg.dataflow, fault_flip_bit=flip)
        m.submodules.abuf = abuf = PackedLaneBuffer(R, cfg.op_depth, W, P)
        # B tiles are double-buffered (two banks): in OS the next fold's weights load while this fold streams
        bank_words = 1 << ceil_log2(-(-cfg.op_depth // P))
        bank_elem_bits = ceil_log2(bank_words * P)
        m.submodules.bbuf = bbuf = PackedLaneBuffer(C, 2 * bank_words * P, W, P)
        bsel, wbank = Signal(), Signal()   # bank the array streams from; bank the loader writes
        m.submodules.accbuf = accbuf = LaneBuffer(C, cfg.op_depth, signed(AW))
        m.submodules.stage = stage = LaneBuffer(P, cfg.out_depth // P, signed(W))
        tag_w = ceil_log2(cfg.out_depth) + 1
        m.submodules.requant = rq = Requantizer(AW, W, tag_width=tag_w)
        # contiguous operand rows and bias vectors stream in through the DMA engine, several reads in flight
        m.submodules.dma = dma = DmaReader(32, cfg.bus_width, cfg.reads_in_flight, len_width=24,
                                           fault="reorder" if self.fault == "dma_reorder" else None)

        # ---- program state -------------------------------------------------------------------------------
        desc = [Signal(32, name=f"desc_{i}") for i in range(DESC_WORDS)]
        M, K, N = desc[F.M], desc[F.K], desc[F.N]
        relu, use_gather = desc[F.FLAGS][0], desc[F.FLAGS][1]
        nlayers, layer, desc_ptr = Signal(32), Signal(32), Signal(32)
        dword = Signal(range(DESC_WORDS))
        m0, n0, k0 = Signal(32), Signal(32), Signal(32)
        mstep = R if os_flow else desc[F.M_TILE]
        rows_v, cols_v, ks_v, T, L = Signal(32), Signal(32), Signal(32), Signal(32), Signal(32)
        done = Signal()
        m.d.comb += [self.done.eq(done), rq.multiplier.eq(desc[F.MULT]), rq.shift.eq(desc[F.SHIFT]),
                     rq.relu.eq(relu)]
        m.d.comb += mem.req.payload.write.eq(0)

        # ---- operand loader state ------------------------------------------------------------------------
        mode = Signal(2)
        li, lj, LI, LJ = Signal(32), Signal(32), Signal(32), Signal(32)
        row_e, e_stride, row_g, g_stride, base, cur_e = (Signal(32) for _ in range(6))
        lg_use = Signal()
        cache_data, cache_tag, cache_ok = Signal(cfg.bus_width), Signal(32), Signal()
        st_en, st_val = Signal(), Signal(signed(W))
        word_addr = Signal(32)
        lane = Signal(max(1, lg))
        m.d.comb += [word_addr.eq(base + (cur_e >> lg)), lane.eq(cur_e[:lg] if lg else 0)]
        hit = Signal()
        m.d.comb += hit.eq(cache_ok & (cache_tag == word_addr))
        elem = Signal(signed(W))
        m.d.comb += elem.eq(cache_data.word_select(lane, CB)[:W])

        to_a = (mode == OS_A) | (mode == WS_A)
        cross = mode == WS_A  # WS A tiles: consecutive elements of a row go to consecutive lanes (lane = k)

        bias = [Signal(signed(32), name=f"bias_{c}") for c in range(C)]

        # ---- DMA loader state: rows requested (dma_ci, next row's first element dma_row_e) run ahead of the
        # unpacker (li, lj, and ``off``: the lane of the next element within the current word)
        dma_ci, dma_row_e = Signal(32), Signal(32)
        off = Signal(lg)
        bias_cmd_sent = Signal()
        ld_active = Signal()    # the tile loader is running
        prefetched = Signal()   # the next fold's B tile is (being) loaded into bank ~bsel

        # ---- unpacking a DMA word: up to P elements a cycle. Along a lane (OS A, B tiles) the elements that fall
        # into the current buffer word are rotated into their slots and written under a mask; across lanes (WS A)
        # each lane takes one element. ``count`` elements are written; the word is consumed when its last element
        # is, or at the row's end.
        elems = Array([Signal(signed(W), name=f"word_elem{j}") for j in range(P)])
        for j in range(P):
            m.d.comb += elems[j].eq(dma.data.payload.data.word_select(j, CB)[:W])
        slot0 = lj[:lg]
        avail_mem = Signal(range(P + 1))
        avail_buf = Signal(range(P + 1))
        rem = Signal(32)
        count = Signal(range(P + 1))
        c1 = Signal(range(P + 1))
        m.d.comb += [avail_mem.eq(P - off), avail_buf.eq(Mux(cross, P, P - slot0)), rem.eq(LJ - lj),
                     c1.eq(_min(avail_mem, avail_buf)), count.eq(Mux(rem < c1, rem, c1))]
        wd_en = Signal()                     # a DMA word is being unpacked this cycle
        wd_mask = Signal(P)
        wd_data = Signal(P * W)
        shift = Signal(lg)
        m.d.comb += shift.eq(off - slot0)
        for sl in range(P):
            m.d.comb += [wd_mask[sl].eq((sl >= slot0) & (sl < slot0 + count)),
                         wd_data.word_select(sl, W).eq(elems[(sl + shift)[:lg]])]

        # ---- operand buffer writes: a DMA word (wd_*), or one element from the gather path (st_*)
        def onehot(index):
            return (Const(1, P) << index)[:P]

        single = Cat(*([st_val] * P))
        for r in range(R):
            xj = Signal(32, name=f"xj{r}")   # this lane's element index within the word's run (cross mode)
            m.d.comb += xj.eq(r - lj)
            x_en = wd_en & (r >= lj) & (xj < count)
            x_val = elems[(off + xj)[:lg]]
            with m.If(cross):
                m.d.comb += [abuf.w_en[r].eq(Mux(x_en | (st_en & (lj == r)), onehot(li[:lg]), 0)),
                             abuf.w_addr[r].eq(li >> lg),
                             abuf.w_data[r].eq(Mux(x_en, Cat(*([x_val] * P)), single))]
            with m.Else():
                m.d.comb += [abuf.w_en[r].eq(Mux(to_a & (li == r), Mux(wd_en, wd_mask, Mux(st_en, onehot(slot0), 0)),
                                                 0)),
                             abuf.w_addr[r].eq(lj >> lg), abuf.w_data[r].eq(Mux(wd_en, wd_data, single))]
        for c in range(C):
            m.d.comb += [bbuf.w_en[c].eq(Mux(~to_a & (li == c), Mux(wd_en, wd_mask, Mux(st_en, onehot(slot0), 0)),
                                             0)),
                         bbuf.w_addr[c].eq(Cat((lj >> lg)[:bank_elem_bits - lg], wbank)),
                         bbuf.w_data[c].eq(Mux(wd_en, wd_data, single))]

        # ---- stream phase timing -------------------------------------------------------------------------
        t, tau = Signal(32), Signal(32)
        act = Signal()          # array is streaming this cycle (tau valid)
        m.d.sync += act.eq(0)
        m.d.sync += tau.eq(t)
        m.d.comb += self.busy.eq(0)
        with m.If(act):
            m.d.sync += self.compute_cycles.eq(self.compute_cycles + 1)
        self._stream_feed(m, arr, abuf, bbuf, accbuf, t, tau, act, K, T, ks_v, k0, bsel, bank_elem_bits)

        # ---- post (bias + requantise) pipeline -----------------------------------------------------------
        pi, pc, p_elem, pdrain = Signal(32), Signal(32), Signal(32), Signal(range(LATENCY + 3))
        issuing = Signal()
        v1, c1, tag1 = Signal(), Signal(range(C)), Signal(tag_w)
        post_rd = Signal()
        npad = Signal(32)
        m.d.comb += npad.eq(desc[F.DST_WORDS] << lg)
        m.d.sync += v1.eq(0)
        acc_sel = Signal(signed(AW))
        bias_sel = Signal(signed(32))
        with m.Switch(c1):
            for c in range(C):
                with m.Case(c):
                    m.d.comb += [acc_sel.eq(accbuf.r_data[c]), bias_sel.eq(bias[c])]
        m.d.comb += [rq.i_valid.eq(v1), rq.i_acc.eq(acc_sel), rq.i_bias.eq(bias_sel), rq.i_tag.eq(tag1)]
        for i in range(P):
            m.d.comb += [stage.w_en[i].eq(rq.o_valid & ((rq.o_tag[:lg] if lg else 0) == i)),
                         stage.w_addr[i].eq(rq.o_tag >> lg), stage.w_data[i].eq(rq.o_data)]
        if not os_flow:
            with m.If(post_rd):
                for c in range(C):
                    m.d.comb += accbuf.r_addr[c].eq(pi)
        else:
            for c in range(C):
                m.d.comb += accbuf.r_addr[c].eq(pi)

        # ---- write-back ----------------------------------------------------------------------------------
        wb_ptr, wb_cnt, wb_total = Signal(32), Signal(32), Signal(32)
        wb_next = Signal()  # a write-back word is accepted this cycle: read the next one ahead (1 word per cycle)
        for i in range(P):
            m.d.comb += stage.r_addr[i].eq(wb_cnt + wb_next)
        wdata = []
        for i in range(P):
            s = Signal(signed(CB), name=f"wb_lane{i}")
            m.d.comb += s.eq(stage.r_data[i])
            wdata.append(s)

        def finish_load() -> None:
            """One operand tile is in its buffer: chain to the next tile's load, or to the bias."""
            with m.Switch(mode):
                with m.Case(OS_A):
                    m.d.sync += mode.eq(OS_B)
                    m.next = "LOAD_SETUP"
                with m.Case(WS_B):
                    m.d.sync += mode.eq(WS_A)
                    m.next = "LOAD_SETUP"
                with m.Default():
                    m.d.sync += [li.eq(0), bias_cmd_sent.eq(0)]
                    m.next = "BIAS_DMA"

        def load_next_or_finish() -> None:
            """Advance the (li, lj) gather loader loop; at the end, chain to the next load or to streaming."""
            with m.If(lj + 1 < LJ):
                m.d.sync += [lj.eq(lj + 1), cur_e.eq(row_e + lj + 1)]
                m.next = "GATHER_REQ"
            with m.Elif(li + 1 < LI):
                m.d.sync += [lj.eq(0), li.eq(li + 1), row_e.eq(row_e + e_stride), row_g.eq(row_g + g_stride),
                             cur_e.eq(row_e + e_stride)]
                m.next = "GATHER_REQ"
            with m.Else():
                finish_load()

        def dma_port() -> None:
            """This state lends the memory port to the DMA engine (it only reads; nothing else is in flight)."""
            m.d.comb += [mem.req.valid.eq(dma.mem.req.valid), mem.req.payload.addr.eq(dma.mem.req.payload.addr),
                         dma.mem.req.ready.eq(mem.req.ready), dma.mem.resp.valid.eq(mem.resp.valid),
                         dma.mem.resp.payload.eq(mem.resp.payload), mem.resp.ready.eq(dma.mem.resp.ready)]

        def traffic(cls: int) -> None:
            """Tag this state's memory request with class ``cls`` (only in the ``classes`` variant)."""
            if self.classes:
                m.d.comb += self.req_class.eq(cls)

        traffic(CLS_CTRL)  # default: header, descriptors and gather tables

        @contextmanager
        def read_word(name: str, addr, cls: int = CLS_CTRL):
            """States NAME_REQ and NAME_WAIT: read one word at ``addr``; the body runs when it arrives."""
            with m.State(f"{name}_REQ"):
                m.d.comb += [self.busy.eq(1), mem.req.valid.eq(1), mem.req.payload.addr.eq(addr)]
                traffic(cls)
                with m.If(mem.req.ready):
                    m.next = f"{name}_WAIT"
            with m.State(f"{name}_WAIT"):
                m.d.comb += [self.busy.eq(1), mem.resp.ready.eq(1)]
                with m.If(mem.resp.valid):
                    yield mem.resp.payload

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [done.eq(0), layer.eq(0), desc_ptr.eq(1), self.compute_cycles.eq(0),
                                 self.folds.eq(0)]
                    m.next = "HDR_REQ"
            with read_word("HDR", 0) as word:
                m.d.sync += [nlayers.eq(word[:32]), dword.eq(0)]
                with m.If(word[:32] == 0):
                    m.next = "FINISH"
                with m.Else():
                    m.next = "DESC_REQ"
            with read_word("DESC", desc_ptr + dword) as word:
                with m.Switch(dword):
                    for i in range(DESC_WORDS):
                        with m.Case(i):
                            m.d.sync += desc[i].eq(word[:32])
                m.d.sync += dword.eq(dword + 1)
                with m.If(dword == DESC_WORDS - 1):
                    m.next = "LAYER_INIT"
                with m.Else():
                    m.next = "DESC_REQ"
            with m.State("LAYER_INIT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [m0.eq(0), n0.eq(0), k0.eq(0), cache_ok.eq(0)]
                m.next = "FOLD_SETUP"
            with m.State("FOLD_SETUP"):
                m.d.comb += self.busy.eq(1)
                rv = _min(mstep, M - m0)
                tt = K if os_flow else rv
                m.d.sync += [rows_v.eq(rv), cols_v.eq(_min(C, N - n0)), ks_v.eq(_min(R, K - k0)), T.eq(tt),
                             L.eq(tt + (2 * R + C - 2))]
                last = (m0 + mstep >= M) & (n0 + C >= N) & (k0 + (K if os_flow else R) >= K)
                if self.fault == "drop_last_fold":
                    skip = last
                else:
                    skip = 0
                with m.If(ld_active):  # a prefetch is still loading: wait for it
                    m.next = "FOLD_SETUP"
                with m.Elif(skip):
                    m.d.sync += prefetched.eq(0)
                    m.next = "FOLD_NEXT"
                with m.Elif(prefetched):  # this fold's weights are already in the other bank: swap, fetch bias
                    m.d.sync += [bsel.eq(~bsel), prefetched.eq(0), li.eq(0), bias_cmd_sent.eq(0)]
                    m.next = "BIAS_DMA"
                with m.Else():
                    if os_flow:
                        m.d.sync += mode.eq(Mux(n0 == 0, OS_A, OS_B))
                    else:
                        m.d.sync += mode.eq(WS_B)
                    m.next = "LOAD_SETUP"
            with m.State("LOAD_SETUP"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [li.eq(0), lj.eq(0), wbank.eq(bsel)]
                with m.Switch(mode):
                    with m.Case(OS_A, WS_A):
                        first = m0 * desc[F.SRC_STRIDE] + (0 if os_flow else k0)
                        m.d.sync += [LI.eq(rows_v), LJ.eq(K if os_flow else ks_v), row_e.eq(first),
                                     cur_e.eq(first), e_stride.eq(desc[F.SRC_STRIDE]),
                                     row_g.eq(m0 * K + (0 if os_flow else k0)), g_stride.eq(K),
                                     base.eq(desc[F.SRC]), lg_use.eq(use_gather), dma_row_e.eq(first),
                                     off.eq(first)]
                    with m.Default():
                        first = n0 * K + (0 if os_flow else k0)
                        m.d.sync += [LI.eq(cols_v), LJ.eq(K if os_flow else ks_v), row_e.eq(first),
                                     cur_e.eq(first), e_stride.eq(K), row_g.eq(0), g_stride.eq(0),
                                     base.eq(desc[F.W]), lg_use.eq(0), dma_row_e.eq(first), off.eq(first)]
                m.d.sync += dma_ci.eq(0)
                m.next = "LOAD_DISPATCH"
            with m.State("LOAD_DISPATCH"):  # gathered A goes element by element; contiguous rows through the DMA
                m.d.comb += self.busy.eq(1)
                with m.If(lg_use):
                    m.next = "GATHER_REQ"
                with m.Else():
                    m.d.sync += ld_active.eq(1)
                    m.next = "DMA_LOAD"
            with m.State("DMA_LOAD"):  # the tile loader (below) runs; wait for it
                m.d.comb += self.busy.eq(1)
                with m.If(~ld_active):
                    finish_load()
            with read_word("GATHER", desc[F.GATHER] + row_g + lj) as word:
                idx = word[:32]
                with m.If(idx[31]):  # -1: zero padding
                    m.d.comb += [st_en.eq(1), st_val.eq(0)]
                    load_next_or_finish()
                with m.Else():
                    m.d.sync += cur_e.eq(idx)
                    m.next = "ELEM"
            with m.State("ELEM"):
                m.d.comb += self.busy.eq(1)
                with m.If(hit):
                    m.d.comb += [st_en.eq(1), st_val.eq(elem)]
                    load_next_or_finish()
                with m.Else():
                    m.d.comb += [mem.req.valid.eq(1), mem.req.payload.addr.eq(word_addr)]
                    if self.classes:
                        m.d.comb += self.req_class.eq(Mux(to_a, CLS_FEAT, CLS_WEIGHTS))
                    with m.If(mem.req.ready):
                        m.next = "ELEM_WAIT"
            with m.State("ELEM_WAIT"):
                m.d.comb += [self.busy.eq(1), mem.resp.ready.eq(1)]
                with m.If(mem.resp.valid):
                    m.d.sync += [cache_data.eq(mem.resp.payload), cache_tag.eq(word_addr), cache_ok.eq(1)]
                    m.next = "ELEM"
            with m.State("BIAS_DMA"):  # the fold's bias vector: one DMA command of cols_v words
                m.d.comb += self.busy.eq(1)
                dma_port()
                traffic(CLS_WEIGHTS)
                m.d.comb += [dma.cmd.valid.eq(~bias_cmd_sent), dma.cmd.payload.base.eq(desc[F.BIAS] + n0),
                             dma.cmd.payload.length.eq(cols_v), dma.data.ready.eq(1)]
                with m.If(dma.cmd.valid & dma.cmd.ready):
                    m.d.sync += bias_cmd_sent.eq(1)
                with m.If(dma.data.valid):
                    with m.Switch(li):
                        for c in range(C):
                            with m.Case(c):
                                m.d.sync += bias[c].eq(dma.data.payload.data[:32])
                    m.d.sync += li.eq(li + 1)
                    with m.If(li + 1 >= cols_v):
                        m.d.sync += [t.eq(0), self.folds.eq(self.folds + 1)]
                        m.next = "STREAM"
            with m.State("STREAM"):
                m.d.comb += self.busy.eq(1)
                m.d.comb += arr.clear.eq(t == 0)
                if os_flow:
                    nxt = n0 + C
                    with m.If((t == 0) & (nxt < N)):  # prefetch the next fold's weights into the other bank
                        m.d.sync += [mode.eq(OS_B), li.eq(0), lj.eq(0), LI.eq(_min(C, N - nxt)), LJ.eq(K),
                                     row_e.eq(nxt * K), e_stride.eq(K), base.eq(desc[F.W]),
                                     dma_row_e.eq(nxt * K), off.eq(nxt * K), dma_ci.eq(0),
                                     wbank.eq(bsel if self.fault == "early_swap" else ~bsel),
                                     ld_active.eq(1), prefetched.eq(1)]
                m.d.sync += [t.eq(t + 1), act.eq(t < L)]
                with m.If(t == L):
                    m.d.sync += [pi.eq(0), pc.eq(0), p_elem.eq(n0), issuing.eq(1), pdrain.eq(0)]
                    if os_flow:
                        m.next = "POST"
                    else:
                        with m.If(k0 + R >= K):
                            m.next = "POST"
                        with m.Else():
                            m.next = "FOLD_NEXT"
            with m.State("POST"):
                m.d.comb += [self.busy.eq(1), post_rd.eq(1)]
                with m.If(issuing):
                    m.d.sync += [v1.eq(1), c1.eq(pc), tag1.eq(p_elem + pc)]
                    with m.If(pc + 1 < cols_v):
                        m.d.sync += pc.eq(pc + 1)
                    with m.Else():
                        m.d.sync += [pc.eq(0), pi.eq(pi + 1), p_elem.eq(p_elem + npad)]
                        with m.If(pi + 1 >= rows_v):
                            m.d.sync += issuing.eq(0)
                with m.Else():
                    m.d.sync += pdrain.eq(pdrain + 1)
                    with m.If(pdrain == LATENCY + 1):
                        m.next = "FOLD_NEXT"
            with m.State("FOLD_NEXT"):
                m.d.comb += self.busy.eq(1)
                if os_flow:
                    with m.If(n0 + C < N):
                        m.d.sync += n0.eq(n0 + C)
                        m.next = "FOLD_SETUP"
                    with m.Else():
                        m.next = "WB_INIT"
                else:
                    with m.If(k0 + R < K):
                        m.d.sync += k0.eq(k0 + R)
                        m.next = "FOLD_SETUP"
                    with m.Elif(n0 + C < N):
                        m.d.sync += [k0.eq(0), n0.eq(n0 + C)]
                        m.next = "FOLD_SETUP"
                    with m.Else():
                        m.next = "WB_INIT"
            with m.State("WB_INIT"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [wb_ptr.eq(desc[F.DST] + m0 * desc[F.DST_WORDS]), wb_cnt.eq(0),
                             wb_total.eq(rows_v * desc[F.DST_WORDS]), cache_ok.eq(0)]
                m.next = "WB_RD"
            with m.State("WB_RD"):
                m.d.comb += self.busy.eq(1)
                m.next = "WB_REQ"
            with m.State("WB_REQ"):
                m.d.comb += [self.busy.eq(1), mem.req.valid.eq(1), mem.req.payload.addr.eq(wb_ptr),
                             mem.req.payload.write.eq(1), mem.req.payload.wdata.eq(Cat(*wdata))]
                traffic(CLS_OUT)
                with m.If(mem.req.ready):
                    m.d.comb += wb_next.eq(1)
                    m.d.sync += [wb_cnt.eq(wb_cnt + 1), wb_ptr.eq(wb_ptr + 1)]
                    with m.If(wb_cnt + 1 >= wb_total):
                        m.next = "WB_DONE"
            with m.State("WB_DONE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [n0.eq(0), k0.eq(0), m0.eq(m0 + mstep)]
                with m.If(m0 + mstep < M):
                    m.next = "FOLD_SETUP"
                with m.Else():
                    m.next = "LAYER_DONE"
            with m.State("LAYER_DONE"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [layer.eq(layer + 1), desc_ptr.eq(desc_ptr + DESC_WORDS), dword.eq(0)]
                with m.If(layer + 1 >= nlayers):
                    m.next = "FINISH"
                with m.Else():
                    m.next = "DESC_REQ"
            with m.State("FINISH"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += done.eq(1)
                m.next = "IDLE"
        # ---- the tile loader: DMA commands for the tile's rows, words unpacked into the operand buffer. It runs
        # beside the sequencer, which starts it for a fold's own tiles (DMA_LOAD waits for it) and, in OS, for
        # the next fold's weights while this fold streams (into the other B bank).
        with m.If(ld_active):
            dma_port()
            if self.classes:
                m.d.comb += self.req_class.eq(Mux(to_a, CLS_FEAT, CLS_WEIGHTS))
            # one command per tile row: the words holding elements [row_e, row_e + LJ)
            first_w = dma_row_e >> lg
            m.d.comb += [dma.cmd.valid.eq(dma_ci < LI), dma.cmd.payload.base.eq(base + first_w),
                         dma.cmd.payload.length.eq(((dma_row_e + LJ - 1) >> lg) - first_w + 1)]
            with m.If(dma.cmd.valid & dma.cmd.ready):
                m.d.sync += [dma_ci.eq(dma_ci + 1), dma_row_e.eq(dma_row_e + e_stride)]
            # unpack up to P elements a cycle into the operand buffer
            with m.If(li >= LI):
                m.d.sync += ld_active.eq(0)
            with m.Elif(dma.data.valid):
                row_end = count == rem
                m.d.comb += [wd_en.eq(1), dma.data.ready.eq(row_end | (count == avail_mem))]
                with m.If(row_end):
                    m.d.sync += [lj.eq(0), li.eq(li + 1), row_e.eq(row_e + e_stride),
                                 off.eq(row_e + e_stride)]
                with m.Else():
                    m.d.sync += [lj.eq(lj + count), off.eq(off + count)]
        return m

    def _stream_feed(self, m: Module, arr, abuf, bbuf, accbuf, t, tau, act, K, T, ks_v, k0, bsel,
                     bank_bits: int) -> None:
        """Operand-buffer addresses (issued at ``t``) and array edges (driven at ``tau = t - 1``).

        Reads are synchronous, so the address for array time ``tau`` is issued one cycle earlier; the range
        checks use ``tau`` and zero every operand outside its valid window, which is what lets partial tiles
        and the pipeline fill/drain share one schedule.
        """
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        if cfg.dataflow == "os":
            drain_at = K + (R + C - 2)
            for r in range(R):
                m.d.comb += [abuf.r_addr[r].eq(t - r),
                             arr.a_in[r].eq(Mux(act & (tau >= r) & (tau - r < K), abuf.r_data[r], 0))]
            for c in range(C):
                m.d.comb += [bbuf.r_addr[c].eq(Cat((t - c)[:bank_bits], bsel)),
                             arr.b_in[c].eq(Mux(act & (tau >= c) & (tau - c < K), bbuf.r_data[c], 0)),
                             arr.top_in[c].eq(0)]
            drain = act & (tau >= drain_at)
            m.d.comb += arr.shift.eq(drain)
            for c in range(C):
                m.d.comb += [accbuf.w_en[c].eq(drain), accbuf.w_addr[c].eq(drain_at + (R - 1) - tau),
                             accbuf.w_data[c].eq(arr.out[c])]
            return
        # weight-stationary: tau in [0, R) preloads weights, then tp = tau - R is the stream time
        tn = Signal(32)
        tp = Signal(32)
        m.d.comb += [tn.eq(t - R), tp.eq(tau - R)]
        loading = act & (tau < R)
        streaming = act & (tau >= R)
        m.d.comb += arr.shift.eq(loading)
        for c in range(C):
            m.d.comb += [bbuf.r_addr[c].eq(Cat(((R - 1) - t)[:bank_bits], bsel)),
                         arr.b_in[c].eq(Mux(loading & ((R - 1) - tau < ks_v), bbuf.r_data[c], 0))]
        for r in range(R):
            m.d.comb += [abuf.r_addr[r].eq(tn - r),
                         arr.a_in[r].eq(Mux(streaming & (tp >= r) & (tp - r < T), abuf.r_data[r], 0))]
        for c in range(C):
            m.d.comb += accbuf.r_addr[c].eq(tn - c)
            m.d.comb += arr.top_in[c].eq(
                Mux(streaming & (k0 != 0) & (tp >= c) & (tp - c < T), accbuf.r_data[c], 0))
            mm = tp - (R - 1 + c)
            m.d.comb += [accbuf.w_en[c].eq(streaming & (tp >= R - 1 + c) & (mm < T)),
                         accbuf.w_addr[c].eq(mm), accbuf.w_data[c].eq(arr.out[c])]
