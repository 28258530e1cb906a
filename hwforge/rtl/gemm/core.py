"""`GemmCore`: the gemm accelerator's units, their queues and tokens, the shared buffers and the memory port.

Decoupled access/execute (see `hwforge.rtl.gemm.isa` for the instructions and the token table):

    memory ─┬─ GemmSequencer (descriptors) ──instructions──▶ load / compute / post / store queues
            ├─ LoadUnit (operand DMA, gather-index DMA) ──▶ A buffer, B buffer, bias registers   (2 banks each)
            │        ComputeUnit (systolic array) ◀── A, B, bias ──▶ accumulator buffer          (2 banks)
            │        PostUnit (requantiser) ◀── accumulators ──▶ output staging buffer           (2 banks)
            └─ StoreUnit (write-back) ◀── staging buffer

Every unit reads its own instruction queue (a `SyncFIFO` stream) and synchronises with the others only through
token semaphores, so fold i+1's operands load and fold i-1's results are requantised and written back while
fold i streams through the array. The four memory initiators (descriptor reads, operand reads, gather-index
reads, write-back) share the port through the round-robin `MemArbiter`, which routes read responses back in
order. The streaming phase of each fold never touches memory and takes exactly the SCALE-Sim cycles
(`hwforge.rtl.gemm.cycles`); `hwforge.rtl.gemm.model` predicts the total with the overlap.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from hwforge.errors import ConfigError
from hwforge.rtl.gemm.compute import ComputeUnit
from hwforge.rtl.gemm.config import GemmConfig
from hwforge.rtl.gemm.isa import BIAS_SLOTS, QUEUE_DEPTH, TOKEN_INIT, TOKENS, Semaphore
from hwforge.rtl.gemm.load import LoadUnit, bank_geometry
from hwforge.rtl.gemm.sequencer import GemmSequencer
from hwforge.rtl.gemm.store import PostUnit, StoreUnit, stage_word_bits
from hwforge.rtl.lib.arbiter import MemArbiter
from hwforge.rtl.lib.lanebuf import LaneBuffer, PackedLaneBuffer
from hwforge.rtl.lib.memport import MemPortSignature

FAULTS = ("flip_acc_bit", "drop_last_fold", "dma_reorder", "early_swap")
"""Deliberately broken variants (for proving the verifier catches errors): ``flip_acc_bit`` inverts one bit of
column 0's results; ``drop_last_fold`` streams nothing in each layer's last fold; ``dma_reorder`` swaps
neighbouring words of every DMA command (`hwforge.rtl.lib.dma`'s ``reorder`` fault); ``early_swap`` makes
each fold stream from the weight bank of the fold after it (a double-buffer swap one fold early)."""

#: Depth of the request FIFO in front of each memory initiator (`MemArbiter`'s ``input_buffers``).
ARBITER_BUFFERS = 2

TRAFFIC_CLASSES = ("features", "weights", "outputs", "control")
"""Traffic classes of ``GemmCore(classes=True)``'s ``req_class`` (names shared with the `snf` accelerator's):
A operands, weights and biases, output write-back, and header/descriptors/gather tables."""
CLS_FEAT, CLS_WEIGHTS, CLS_OUT, CLS_CTRL = range(len(TRAFFIC_CLASSES))


def check_fault(fault: str | None) -> None:
    """Reject unknown fault names with the list of known ones."""
    if fault is not None and fault not in FAULTS:
        raise ConfigError(f"gemm: unknown fault {fault!r}; known faults: {', '.join(FAULTS)}")


class GemmCore(wiring.Component):
    """The units and what joins them; `GemmAccelerator` adds the memory-traffic counters and the cycle counter.

    ``classes=True`` adds a ``req_class`` output (index into `TRAFFIC_CLASSES`) valid with every memory request,
    for per-class byte counters. It is a constructor flag rather than a `GemmConfig` field so that the default
    design, its Verilog and every config-keyed cache stay as they are.
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
        R, C, W, P = cfg.rows, cfg.cols, cfg.width, cfg.per_word
        m.submodules.seq = seq = GemmSequencer(cfg, self.fault)
        m.submodules.load = load = LoadUnit(cfg, self.fault)
        m.submodules.compute = cmp = ComputeUnit(cfg, self.fault)
        m.submodules.post = post = PostUnit(cfg)
        m.submodules.store = store = StoreUnit(cfg)
        # Request FIFOs in front of the arbiter keep the grant off the units' timing paths (100 MHz on the ECP5);
        # a write waiting there is not yet in memory, so the arbiter's `idle` joins the units' idle below.
        m.submodules.arbiter = arb = MemArbiter(4, 32, cfg.bus_width, n_classes=len(TRAFFIC_CLASSES),
                                                input_buffers=ARBITER_BUFFERS)

        # ---- instruction queues: sequencer -> units ------------------------------------------------------
        units = {"load": load, "compute": cmp, "post": post, "store": store}
        queues_empty = []
        for name, unit in units.items():
            src = getattr(seq, name)
            q = SyncFIFO(width=src.payload.shape().size, depth=QUEUE_DEPTH[name])
            m.submodules[f"{name}_queue"] = q
            m.d.comb += [q.w_en.eq(src.valid), q.w_data.eq(src.payload.as_value()), src.ready.eq(q.w_rdy),
                         unit.instr.valid.eq(q.r_rdy), unit.instr.payload.eq(q.r_data), q.r_en.eq(unit.instr.ready)]
            queues_empty.append(~q.r_rdy)
        # the load unit's buffer writes and ready tokens pass one register stage (below): a write still in it
        # keeps the core busy
        load_writing = Signal()
        idle = [load.idle, ~load_writing, cmp.idle, post.idle, store.idle, arb.idle, *queues_empty]
        m.d.comb += [seq.units_idle.eq(_all(idle)), seq.start.eq(self.start),
                     self.done.eq(seq.done), self.busy.eq(seq.busy), cmp.start.eq(self.start),
                     self.compute_cycles.eq(cmp.compute_cycles), self.folds.eq(cmp.folds),
                     post.multiplier.eq(seq.multiplier), post.shift.eq(seq.shift), post.relu.eq(seq.relu)]

        # ---- tokens ----------------------------------------------------------------------------------------
        sem = {}
        for name in TOKENS:
            sem[name] = m.submodules[f"tok_{name}"] = Semaphore(TOKEN_INIT[name])
        m.d.comb += [
            load.a_free.eq(sem["a_free"].avail), sem["a_free"].pop.eq(load.a_free_pop),
            load.b_free.eq(sem["b_free"].avail), sem["b_free"].pop.eq(load.b_free_pop),
            cmp.a_ready.eq(sem["a_ready"].avail), sem["a_ready"].pop.eq(cmp.a_ready_pop),
            cmp.b_ready.eq(sem["b_ready"].avail), sem["b_ready"].pop.eq(cmp.b_ready_pop),
            cmp.acc_free.eq(sem["acc_free"].avail), sem["acc_free"].pop.eq(cmp.acc_free_pop),
            sem["a_free"].push.eq(cmp.a_free_push), sem["b_free"].push.eq(cmp.b_free_push),
            sem["acc_ready"].push.eq(cmp.acc_ready_push),
            post.acc_ready.eq(sem["acc_ready"].avail), sem["acc_ready"].pop.eq(post.acc_ready_pop),
            post.st_free.eq(sem["st_free"].avail), sem["st_free"].pop.eq(post.st_free_pop),
            sem["acc_free"].push.eq(post.acc_free_push), sem["st_ready"].push.eq(post.st_ready_push),
            store.st_ready.eq(sem["st_ready"].avail), sem["st_ready"].pop.eq(store.st_ready_pop),
            sem["st_free"].push.eq(store.st_free_push),
        ]

        # ---- buffers -----------------------------------------------------------------------------------------
        word_bits, _ = bank_geometry(cfg)
        depth = 2 * (1 << word_bits) * P
        m.submodules.abuf = abuf = PackedLaneBuffer(R, depth, W, P)
        m.submodules.bbuf = bbuf = PackedLaneBuffer(C, depth, W, P)
        # Load-unit writes are registered before they reach the buffers (timing: the unpacker's element count and
        # address arithmetic, then the routes to the block RAMs, do not fit one cycle at 100 MHz); the ready
        # tokens are delayed with them, so a consumer still sees a tile only after its last write.
        writes = []
        for buf, lanes, prefix in ((abuf, R, "a"), (bbuf, C, "b")):
            for i in range(lanes):
                writes.append(buf.w_en[i])
                m.d.sync += [buf.w_en[i].eq(getattr(load, f"{prefix}_w_en")[i]),
                             buf.w_addr[i].eq(getattr(load, f"{prefix}_w_addr")[i]),
                             buf.w_data[i].eq(getattr(load, f"{prefix}_w_data")[i])]
                m.d.comb += [buf.r_addr[i].eq(getattr(cmp, f"{prefix}_r_addr")[i]),
                             getattr(cmp, f"{prefix}_r_data")[i].eq(buf.r_data[i])]
        m.submodules.biasbuf = biasbuf = LaneBuffer(C, BIAS_SLOTS, signed(32))
        for c in range(C):
            writes.append(biasbuf.w_en[c])
            m.d.sync += [biasbuf.w_en[c].eq(load.bias_w_en[c]), biasbuf.w_addr[c].eq(load.bias_w_addr),
                         biasbuf.w_data[c].eq(load.bias_w_data)]
            m.d.comb += [biasbuf.r_addr[c].eq(cmp.bias_r_addr), cmp.bias_r_data[c].eq(biasbuf.r_data[c])]
        a_push, b_push = Signal(), Signal()
        m.d.sync += [a_push.eq(load.a_ready_push), b_push.eq(load.b_ready_push)]
        m.d.comb += [sem["a_ready"].push.eq(a_push), sem["b_ready"].push.eq(b_push),
                     load_writing.eq(a_push | b_push | Cat(*writes).any())]
        # two physical accumulator banks: the compute unit writes (and in WS reads) one while post reads the other
        accs = []
        for b in range(2):
            acc = m.submodules[f"accbuf{b}"] = LaneBuffer(C, cfg.op_depth, signed(cfg.acc_width))
            accs.append(acc)
            mine = cmp.accbank == b
            cmp_reads = cmp.streaming & mine if cfg.dataflow == "ws" else 0
            for c in range(C):
                m.d.comb += [acc.w_en[c].eq(cmp.acc_w_en[c] & mine), acc.w_addr[c].eq(cmp.acc_w_addr[c]),
                             acc.w_data[c].eq(cmp.acc_w_data[c]),
                             acc.r_addr[c].eq(Mux(cmp_reads, cmp.acc_r_addr[c], post.acc_r_addr))]
        for c in range(C):
            m.d.comb += [cmp.acc_r_data[c].eq(Mux(cmp.accbank, accs[1].r_data[c], accs[0].r_data[c])),
                         post.acc_r_data[c].eq(Mux(post.accbank, accs[1].r_data[c], accs[0].r_data[c]))]
        m.submodules.stage = stage = LaneBuffer(P, 2 << stage_word_bits(cfg), signed(W))
        for i in range(P):
            m.d.comb += [stage.w_en[i].eq(post.st_w_en[i]), stage.w_addr[i].eq(post.st_w_addr[i]),
                         stage.w_data[i].eq(post.st_w_data[i]), stage.r_addr[i].eq(store.st_r_addr[i]),
                         store.st_r_data[i].eq(stage.r_data[i])]

        # ---- memory: four initiators on one port -------------------------------------------------------------
        for i, port in enumerate((seq.mem, load.data_mem, load.index_mem, store.mem)):
            wiring.connect(m, port, arb.up[i])
        wiring.connect(m, arb.down, wiring.flipped(self.mem))
        m.d.comb += [arb.up_class[0].eq(CLS_CTRL), arb.up_class[1].eq(Mux(load.loading_a, CLS_FEAT, CLS_WEIGHTS)),
                     arb.up_class[2].eq(CLS_CTRL), arb.up_class[3].eq(CLS_OUT)]
        if self.classes:
            m.d.comb += self.req_class.eq(arb.down_class)
        return m


def _all(values):
    out = 1
    for v in values:
        out = out & v
    return out
