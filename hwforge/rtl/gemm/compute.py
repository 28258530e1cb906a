"""`ComputeUnit`: runs one fold of the systolic array per instruction, reading double-buffered operand tiles.

A fold streams a tile through the array for a fixed number of cycles (the SCALE-Sim formula, see
`hwforge.rtl.gemm.cycles`) and never touches memory, so loads and stores of other folds overlap it entirely.
The bias joins the accumulators here rather than in the requantiser: OS adds it to each result as it drains
out of the bottom edge, WS feeds it into the top of each column on the first K block. Both wrap at
``acc_width`` exactly like ``wrap(acc + bias)``, and the bias therefore belongs to the B bank the fold holds,
which it gives back at the fold's end.

Tokens: a fold takes ``b_ready`` (and ``a_ready`` on the first fold of an A tile, ``acc_free`` on the first fold
into an accumulator bank) before it starts, and in its last cycle gives ``b_free`` (and ``a_free`` after the
last fold of an A tile, ``acc_ready`` after the last fold into an accumulator bank). The next instruction is
taken in that same cycle when its tokens are there. The array runs two cycles behind the fold's clock (buffer
read, then edge registers), and each cell registers its product (`hwforge.rtl.lib.pe.PRODUCT_LATENCY`), so a
fold occupies the array for the SCALE-Sim cycles plus `FOLD_OVERHEAD`; ``compute_cycles`` counts only the
SCALE-Sim part, so it stays equal to the formula.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from hwforge.rtl.gemm.array import SystolicArray
from hwforge.rtl.gemm.config import GemmConfig
from hwforge.rtl.gemm.isa import BIAS_BITS, COMPUTE_LAYOUT
from hwforge.rtl.gemm.load import bank_geometry
from hwforge.rtl.lib.pe import PRODUCT_LATENCY

#: Cycles a fold takes beyond the SCALE-Sim term ``2R + C + T - 2``: the buffer read and edge register in front
#: of the array, and the cells' product register.
FOLD_OVERHEAD = 2 + PRODUCT_LATENCY

#: Bits of the fold-time counter: T (at most 65,536) plus the array's fill and drain.
TIME_BITS = 18


def acc_addr_bits(cfg: GemmConfig) -> int:
    """Address bits of one accumulator-buffer bank (``op_depth`` entries per lane)."""
    return max(1, (cfg.op_depth - 1).bit_length())


class ComputeUnit(wiring.Component):
    """The array plus its feeding and draining logic; see the module docstring."""

    def __init__(self, cfg: GemmConfig, fault: str | None = None):
        self.cfg = cfg
        self.fault = fault
        R, C, W, AW = cfg.rows, cfg.cols, cfg.width, cfg.acc_width
        _, elem_bits = bank_geometry(cfg)
        ab = elem_bits + 1
        cb = acc_addr_bits(cfg)
        super().__init__({
            "instr": In(stream.Signature(COMPUTE_LAYOUT)),
            "start": In(1),
            "a_r_addr": Out(unsigned(ab)).array(R), "a_r_data": In(signed(W)).array(R),
            "b_r_addr": Out(unsigned(ab)).array(C), "b_r_data": In(signed(W)).array(C),
            "bias_r_addr": Out(BIAS_BITS), "bias_r_data": In(signed(32)).array(C),
            "acc_w_en": Out(1).array(C), "acc_w_addr": Out(unsigned(cb)).array(C),
            "acc_w_data": Out(signed(AW)).array(C),
            "acc_r_addr": Out(unsigned(cb)).array(C), "acc_r_data": In(signed(AW)).array(C),
            "accbank": Out(1), "streaming": Out(1),
            "a_ready": In(1), "a_ready_pop": Out(1), "b_ready": In(1), "b_ready_pop": Out(1),
            "acc_free": In(1), "acc_free_pop": Out(1),
            "a_free_push": Out(1), "b_free_push": Out(1), "acc_ready_push": Out(1),
            "compute_cycles": Out(unsigned(32)), "folds": Out(unsigned(32)), "idle": Out(1),
        })

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self.cfg
        R, C, AW = cfg.rows, cfg.cols, cfg.acc_width
        flip = AW - 2 if self.fault == "flip_acc_bit" else None
        m.submodules.array = arr = SystolicArray(R, C, cfg.width, AW, cfg.dataflow, fault_flip_bit=flip)

        ins = Signal(COMPUTE_LAYOUT)
        t, tau, tau2 = Signal(TIME_BITS), Signal(TIME_BITS), Signal(TIME_BITS)
        L = Signal(TIME_BITS)            # array cycles of the fold: SCALE-Sim term + the cells' product latency
        act, act2 = Signal(), Signal()   # buffer data for array time tau is valid / the array streams tau2
        formula, formula2 = Signal(), Signal()   # ... and tau (tau2) is within the SCALE-Sim term
        running = Signal()
        m.d.sync += [act.eq(0), formula.eq(0), tau.eq(t), act2.eq(act), tau2.eq(tau), formula2.eq(formula)]
        m.d.comb += [self.accbank.eq(ins.accbank), self.streaming.eq(running), self.idle.eq(~running)]
        with m.If(self.start):
            m.d.sync += [self.compute_cycles.eq(0), self.folds.eq(0)]
        with m.Elif(formula2):
            m.d.sync += self.compute_cycles.eq(self.compute_cycles + 1)

        # take the next instruction when its tokens are there (from idle, or in a fold's last cycle)
        p = self.instr.payload
        can_take = Signal()
        m.d.comb += can_take.eq(self.instr.valid & (~p.pop_b | self.b_ready) & (~p.pop_a | self.a_ready)
                                & (~p.pop_acc_free | self.acc_free))

        def take() -> None:
            with m.If(can_take):
                m.d.comb += [self.instr.ready.eq(1), self.b_ready_pop.eq(p.pop_b), self.a_ready_pop.eq(p.pop_a),
                             self.acc_free_pop.eq(p.pop_acc_free)]
                m.d.sync += [ins.eq(p), t.eq(0), running.eq(1), self.folds.eq(self.folds + 1),
                             L.eq(p.t_len + (2 * R + C - 2 + PRODUCT_LATENCY))]
            with m.Else():
                m.d.sync += running.eq(0)

        # the array runs two cycles behind t (buffer read, edge register), so a fold's last array cycle is t = L+1
        with m.If(~running):
            take()
        with m.Else():
            m.d.sync += [t.eq(t + 1), act.eq(t < L), formula.eq(t + PRODUCT_LATENCY < L)]
            with m.If(t == L + 1):
                m.d.comb += [self.b_free_push.eq(ins.push_b_free), self.a_free_push.eq(ins.push_a_free),
                             self.acc_ready_push.eq(ins.push_acc_ready)]
                take()
        m.d.comb += arr.clear.eq(running & (t == 0))
        self._feed(m, arr, ins, t, tau, act, tau2, act2)
        return m

    def _feed(self, m: Module, arr: SystolicArray, ins, t, tau, act, tau2, act2) -> None:
        """Operand-buffer addresses (issued at ``t``), edge registers (loaded at ``tau = t - 1``, when the
        synchronous reads return) and the array side (``tau2 = t - 2``).

        The range checks use ``tau`` and zero every operand outside its valid window, which is what lets partial
        tiles and the pipeline fill/drain share one schedule. Registering the edges keeps the buffer read, the
        bank and lane selection and the window checks out of the multipliers' cycle (timing closure); drain,
        weight shift and accumulator writes follow the array at ``tau2``.
        """
        cfg = self.cfg
        R, C = cfg.rows, cfg.cols
        _, eb = bank_geometry(cfg)
        T = ins.t_len
        m.d.comb += self.bias_r_addr.eq(ins.bslot)   # read once per fold; used from tau >= 1 on
        bias = self.bias_r_data

        def a_addr(e):
            return ins.aoff + e[:eb]

        def b_addr(e):
            return ins.boff + e[:eb]

        def edge(port, value) -> None:
            reg = Signal.like(port, name=f"edge_{port.name}")
            m.d.sync += reg.eq(value)
            m.d.comb += port.eq(reg)

        PL = PRODUCT_LATENCY
        if cfg.dataflow == "os":
            drain_at = T + (R + C - 2 + PL)     # the bottom-right cell's last product is in its accumulator
            for r in range(R):
                m.d.comb += self.a_r_addr[r].eq(a_addr(t - r))
                edge(arr.a_in[r], Mux(act & (tau >= r) & (tau - r < T), self.a_r_data[r], 0))
            for c in range(C):
                m.d.comb += [self.b_r_addr[c].eq(b_addr(t - c)), arr.top_in[c].eq(0)]
                edge(arr.b_in[c], Mux(act & (tau >= c) & (tau - c < T), self.b_r_data[c], 0))
            drain = act2 & (tau2 >= drain_at)
            m.d.comb += arr.shift.eq(drain)
            for c in range(C):
                m.d.comb += [self.acc_w_en[c].eq(drain), self.acc_w_addr[c].eq(drain_at + (R - 1) - tau2),
                             self.acc_w_data[c].eq(arr.out[c] + bias[c])]
            return
        # weight-stationary: tau in [0, R) preloads weights, then tp = tau - R is the stream time
        tn, tp, tp2 = Signal(TIME_BITS), Signal(TIME_BITS), Signal(TIME_BITS)
        m.d.comb += [tn.eq(t - R), tp.eq(tau - R), tp2.eq(tau2 - R)]
        loading = act & (tau < R)
        streaming = act & (tau >= R)
        m.d.comb += arr.shift.eq(act2 & (tau2 < R))
        for c in range(C):
            m.d.comb += self.b_r_addr[c].eq(b_addr((R - 1) - t))
            edge(arr.b_in[c], Mux(loading & ((R - 1) - tau < ins.ks), self.b_r_data[c], 0))
        for r in range(R):
            m.d.comb += self.a_r_addr[r].eq(a_addr(tn - r))
            edge(arr.a_in[r], Mux(streaming & (tp >= r) & (tp - r < T), self.a_r_data[r], 0))
        # partial sums enter PL cycles after the activations they meet (the cells' product register)
        for c in range(C):
            m.d.comb += self.acc_r_addr[c].eq(tn - (c + PL))
            edge(arr.top_in[c],
                 Mux(streaming & (tp >= c + PL) & (tp - (c + PL) < T),
                     Mux(ins.accumulate, self.acc_r_data[c], bias[c]), 0))
            mm = tp2 - (R - 1 + c + PL)
            m.d.comb += [self.acc_w_en[c].eq(act2 & (tau2 >= R) & (tp2 >= R - 1 + c + PL) & (mm < T)),
                         self.acc_w_addr[c].eq(mm), self.acc_w_data[c].eq(arr.out[c])]
