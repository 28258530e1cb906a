"""`GemmSequencer`: reads the program's layer descriptors and issues the units' instructions, fold by fold.

It is the only part of the accelerator that knows the loop nest. Per layer (descriptor words at address 0, see
`hwforge.rtl.gemm.program`):

- OS: for each row block of ``rows`` rows (m0), for each column block of ``cols`` outputs (n0): load A (first
  column block only: the A tile is reused across the row block), load B, load the bias, compute, post; after the
  last column block, store the row block. When the descriptor marks the weights *resident* (every column block
  fits the two weight banks side by side, `hwforge.rtl.gemm.program.resident`), B and the biases are loaded in
  the first row block only, each block at its own offset and bias slot, and reused by every later row block.
- WS: for each row chunk of ``M_TILE`` rows, each column block, each K block of ``rows``: load B (and the bias on
  the first K block), load the activations, compute (accumulating from the second K block on); post after the
  last K block; store after the last column block.

The loops only add and compare: the products they step by are precomputed in the descriptor. Between layers the
sequencer waits until every unit is idle, because the next layer reads what the last one wrote.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from hwforge.ir.quant import MULT_BITS
from hwforge.rtl.gemm.config import GemmConfig
from hwforge.rtl.gemm.isa import (
    BIAS_BITS,
    COMPUTE_LAYOUT,
    DIM,
    LOAD_A,
    LOAD_B,
    LOAD_BIAS,
    LOAD_LAYOUT,
    POST_LAYOUT,
    STORE_LAYOUT,
)
from hwforge.rtl.gemm.load import bank_geometry
from hwforge.rtl.gemm.program import DESC_WORDS, F
from hwforge.rtl.lib.dma import DmaReader
from hwforge.rtl.lib.memport import MemPortSignature


def _min(a, b):
    return Mux(a < b, a, b)


class GemmSequencer(wiring.Component):
    """Descriptor fetch and instruction issue; see the module docstring."""

    def __init__(self, cfg: GemmConfig, fault: str | None = None):
        self.cfg = cfg
        self.fault = fault
        super().__init__({
            "start": In(1), "done": Out(1), "busy": Out(1),
            "mem": Out(MemPortSignature(32, cfg.bus_width)),
            "load": Out(stream.Signature(LOAD_LAYOUT)), "compute": Out(stream.Signature(COMPUTE_LAYOUT)),
            "post": Out(stream.Signature(POST_LAYOUT)), "store": Out(stream.Signature(STORE_LAYOUT)),
            "units_idle": In(1),
            "multiplier": Out(unsigned(MULT_BITS)), "shift": Out(unsigned(6)), "relu": Out(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        os_flow = cfg.dataflow == "os"
        m.submodules.dma = dma = DmaReader(32, cfg.bus_width, min(cfg.reads_in_flight, DESC_WORDS), len_width=8)
        wiring.connect(m, dma.mem, wiring.flipped(self.mem))

        desc = [Signal(32, name=f"desc_{i}") for i in range(DESC_WORDS)]
        M, K, N = desc[F.M], desc[F.K], desc[F.N]
        m.d.comb += [self.multiplier.eq(desc[F.MULT]), self.shift.eq(desc[F.SHIFT]), self.relu.eq(desc[F.FLAGS][0])]
        gather = desc[F.FLAGS][1]
        resident = desc[F.FLAGS][2] if os_flow else Const(0, 1)   # the layer's weights stay on chip
        _, eb = bank_geometry(cfg)
        bank_elems = 1 << eb
        lg = ceil_log2(cfg.per_word)
        nlayers, layer, desc_ptr = Signal(32), Signal(32), Signal(32)
        dword = Signal(range(DESC_WORDS + 1))
        cmd_sent = Signal()

        # loop state: what is left of each dimension, and the running addresses of the current tile
        m_left, n_left, k_left = Signal(32), Signal(32), Signal(32)
        n0, k0 = Signal(32), Signal(32)
        a_first, g_row, w_first, dst, out_left = (Signal(32, name=n) for n in
                                                  ("a_first", "g_row", "w_first", "dst", "out_left"))
        abank, bbank, accbank, stbank = Signal(), Signal(), Signal(), Signal()
        first_m = Signal()                      # first row block of the layer (resident weights load then)
        n_idx = Signal(BIAS_BITS)               # column block index (resident weights: its bias slot)
        res_off, kpad = Signal(DIM + 1), Signal(DIM + 1)   # resident weights: this block's offset, K padded
        boff = Mux(resident, res_off, Mux(bbank, bank_elems, 0))
        bslot = Mux(resident, n_idx, bbank)
        mstep = R if os_flow else desc[F.M_TILE]
        rows_v, cols_v, ks_v = Signal(32), Signal(32), Signal(32)
        first_n = n0 == 0
        last_n = n_left <= C
        first_k = k0 == 0
        last_k = (k_left <= R) if not os_flow else Const(1, 1)
        m.d.comb += [rows_v.eq(_min(mstep, m_left)), cols_v.eq(_min(C, n_left)), ks_v.eq(_min(R, k_left))]

        def emit(port, fields: dict, next_state: str) -> None:
            """Offer one instruction; move on once the unit's queue takes it."""
            m.d.comb += port.valid.eq(1)
            for name, value in fields.items():
                m.d.comb += getattr(port.payload, name).eq(value)
            with m.If(port.ready):
                m.next = next_state

        def read_cmd(base, length) -> None:
            m.d.comb += [dma.cmd.valid.eq(~cmd_sent), dma.cmd.payload.base.eq(base),
                         dma.cmd.payload.length.eq(length), dma.data.ready.eq(1)]
            with m.If(dma.cmd.valid & dma.cmd.ready):
                m.d.sync += cmd_sent.eq(1)

        word = dma.data.payload.data[:32]
        busy = Signal()
        m.d.comb += self.busy.eq(busy)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.done.eq(0), busy.eq(1), layer.eq(0), desc_ptr.eq(1), cmd_sent.eq(0)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                read_cmd(0, 1)
                with m.If(dma.data.valid):
                    m.d.sync += [nlayers.eq(word), dword.eq(0), cmd_sent.eq(0)]
                    m.next = "HEADER_CHECK"
            with m.State("HEADER_CHECK"):
                with m.If(nlayers == 0):
                    m.next = "FINISH"
                with m.Else():
                    m.next = "DESC"
            with m.State("DESC"):
                read_cmd(desc_ptr, DESC_WORDS)
                with m.If(dma.data.valid):
                    with m.Switch(dword):
                        for i in range(DESC_WORDS):
                            with m.Case(i):
                                m.d.sync += desc[i].eq(word)
                    m.d.sync += dword.eq(dword + 1)
                    with m.If(dword == DESC_WORDS - 1):
                        m.next = "LAYER_INIT"
            with m.State("LAYER_INIT"):
                m.d.sync += [m_left.eq(M), n_left.eq(N), k_left.eq(K), n0.eq(0), k0.eq(0), a_first.eq(0),
                             g_row.eq(desc[F.GATHER]), w_first.eq(0), dst.eq(desc[F.DST]),
                             out_left.eq(desc[F.OUT_WORDS]), first_m.eq(1), n_idx.eq(0), res_off.eq(0),
                             kpad.eq(((K + (cfg.per_word - 1)) >> lg) << lg)]
                m.next = "FOLD"
            with m.State("FOLD"):
                if os_flow:
                    with m.If(first_n):
                        m.next = "LOAD_A"
                    with m.Else():
                        m.next = "LOAD_B"
                else:
                    m.next = "LOAD_B"
            a_fields = {"target": LOAD_A, "dest": Mux(abank, bank_elems, 0), "base": desc[F.SRC], "first": a_first + k0,
                        "rows": rows_v, "row_len": K if os_flow else ks_v, "stride": desc[F.SRC_STRIDE],
                        "cross": 0 if os_flow else 1, "gather": gather, "gbase": g_row + k0, "gstride": K,
                        "pop_free": 1, "push_ready": 1}
            with m.State("LOAD_A"):
                emit(self.load, a_fields, "LOAD_B" if os_flow else "COMPUTE")
                with m.If(self.load.ready):
                    m.d.sync += abank.eq(~abank)
            with m.State("LOAD_B"):
                with m.If(resident & ~first_m):   # resident weights were loaded in the first row block
                    m.next = "COMPUTE"
                with m.Else():
                    emit(self.load, {"target": LOAD_B, "dest": boff, "base": desc[F.W], "first": w_first + k0,
                                     "rows": cols_v, "row_len": K if os_flow else ks_v, "stride": K,
                                     "pop_free": ~resident, "push_ready": 0 if os_flow else ~first_k},
                         "LOAD_BIAS" if os_flow else "WS_BIAS")
            if not os_flow:
                with m.State("WS_BIAS"):
                    with m.If(first_k):
                        m.next = "LOAD_BIAS"
                    with m.Else():
                        m.next = "LOAD_A"
            with m.State("LOAD_BIAS"):
                emit(self.load, {"target": LOAD_BIAS, "dest": bslot, "base": desc[F.BIAS] + n0, "rows": 1,
                                 "row_len": cols_v, "push_ready": 1},
                     "COMPUTE" if os_flow else "LOAD_A")
            # the A tile in use is the bank loaded last (OS: abank was toggled when it was issued)
            cur_abank = ~abank
            if self.fault == "early_swap":   # the next fold's tile: the other bank, or the next resident block
                b_in_use = Mux(resident, res_off + kpad, Mux(~bbank, bank_elems, 0))
            else:
                b_in_use = boff
            t_len = K if os_flow else rows_v
            if self.fault == "drop_last_fold":   # the layer's last fold streams nothing (bias-only results)
                t_len = Mux(last_k & last_n & (m_left <= mstep), 0, t_len)
            with m.State("COMPUTE"):
                emit(self.compute, {"t_len": t_len, "ks": ks_v, "aoff": Mux(cur_abank, bank_elems, 0),
                                    "boff": b_in_use, "bslot": bslot,
                                    "pop_b": ~resident | first_m, "push_b_free": ~resident, "accbank": accbank,
                                    "accumulate": 0 if os_flow else ~first_k,
                                    "pop_a": first_n if os_flow else 1, "push_a_free": last_n if os_flow else 1,
                                    "pop_acc_free": first_k if not os_flow else 1, "push_acc_ready": last_k},
                     "POST_CHECK")
                with m.If(self.compute.ready):
                    m.d.sync += bbank.eq(~bbank & ~resident)
            with m.State("POST_CHECK"):
                with m.If(last_k):
                    m.next = "POST"
                with m.Else():
                    m.next = "NEXT"
            with m.State("POST"):
                emit(self.post, {"rows": rows_v, "cols": cols_v, "accbank": accbank, "stbank": stbank,
                                 "col0": n0, "npad": desc[F.DST_WORDS] * cfg.per_word, "pop_st_free": first_n,
                                 "push_st_ready": last_n}, "NEXT")
                with m.If(self.post.ready):
                    m.d.sync += accbank.eq(~accbank)
            with m.State("NEXT"):
                with m.If(~last_k):
                    m.d.sync += [k0.eq(k0 + R), k_left.eq(k_left - R)]
                    m.next = "FOLD"
                with m.Elif(~last_n):
                    m.d.sync += [k0.eq(0), k_left.eq(K), n0.eq(n0 + C), n_left.eq(n_left - C),
                                 w_first.eq(w_first + desc[F.B_STEP]), n_idx.eq(n_idx + 1), res_off.eq(res_off + kpad)]
                    m.next = "FOLD"
                with m.Else():
                    m.next = "STORE"
            with m.State("STORE"):
                emit(self.store, {"stbank": stbank, "dst": dst, "words": _min(desc[F.DST_STEP], out_left)},
                     "ROW_NEXT")
                with m.If(self.store.ready):
                    m.d.sync += stbank.eq(~stbank)
            with m.State("ROW_NEXT"):
                m.d.sync += [k0.eq(0), k_left.eq(K), n0.eq(0), n_left.eq(N), w_first.eq(0), first_m.eq(0),
                             n_idx.eq(0), res_off.eq(0),
                             a_first.eq(a_first + desc[F.A_STEP]), g_row.eq(g_row + desc[F.G_STEP]),
                             dst.eq(dst + desc[F.DST_STEP]), out_left.eq(out_left - desc[F.DST_STEP]),
                             m_left.eq(m_left - mstep)]
                with m.If(m_left > mstep):
                    m.next = "FOLD"
                with m.Else():
                    m.next = "LAYER_END"
            with m.State("LAYER_END"):   # the next layer reads this one's output: wait for every unit
                with m.If(self.units_idle):
                    m.d.sync += [layer.eq(layer + 1), desc_ptr.eq(desc_ptr + DESC_WORDS), dword.eq(0),
                                 cmd_sent.eq(0)]
                    with m.If(layer + 1 >= nlayers):
                        m.next = "FINISH"
                    with m.Else():
                        m.next = "DESC"
            with m.State("FINISH"):
                m.d.sync += [self.done.eq(1), busy.eq(0)]
                m.next = "IDLE"
        return m
