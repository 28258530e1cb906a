"""`SnfSystem`: the whole `snf` accelerator in one design, aggregation and combination behind one memory port.

Why one design: a GCN alternates combinations (X W, dense) and aggregations (Â H, sparse); with the two engines
in separate designs only one of them can be on the FPGA and every layer boundary is a host round trip. Here
both engines and a small layer sequencer share one memory image and one port, so a whole GCN (every run of
consecutive offloaded layers) runs from one start pulse, each layer reading its input where the previous
layer wrote its output.

Structure::

    sequencer (layer table, log) ─────────────────┐ port 0 (control class)
    SnfAccelerator (aggregation)  ── +base ──────┤ port 1 (its own classes: topology, features, ...)
    GemmAccelerator (combination) ── +base ──────┤ port 2 (gemm classes mapped by name, `GEMM_CLASS_MAP`)
                                                  └─ MemArbiter ─ CountingMemPort (snf CLASSES) ─ mem

Both engines are unchanged: each reads its program from its own address 0, so the port of each adds the
current layer's *program base* to every request address (32-bit, wrapping, so a layer may point below its
base at the previous layer's output). Only one engine runs at a time; each keeps its own counters (zeroed on
its start), which the sequencer copies into the layer log after every layer, so the per-layer reports of the
aggregation and the combination mean exactly what they meant with two designs. The top counters (cycles,
bytes per class over the whole run) count everything, the sequencer's table reads and log writes included.

Image header (word addresses, one 32-bit field per bus word, see `hwforge.rtl.gcn.system_image`)::

    word 0             L: layers
    word 1             LOG: word address of the layer log (`RECORD_WORDS` words per layer)
    word 2 + 2i        kind of layer i (`KIND_AGGREGATION` or `KIND_COMBINATION`)
    word 3 + 2i        program base of layer i (its descriptor / gemm header is at that address)

Log record of layer i (at LOG + RECORD_WORDS*i): word 0 the kind, then the engine's counters in port order
(`record_counters`), zero-filled.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hwforge.errors import ConfigError
from hwforge.rtl.gcn.config import SnfConfig
from hwforge.rtl.gcn.engine import C_CTRL, CLASSES
from hwforge.rtl.gcn.top import COUNTERS as AGG_COUNTERS
from hwforge.rtl.gcn.top import FAULTS as AGG_FAULTS
from hwforge.rtl.gcn.top import SnfAccelerator
from hwforge.rtl.gemm.config import GemmConfig
from hwforge.rtl.gemm.core import FAULTS as GEMM_FAULTS
from hwforge.rtl.gemm.core import TRAFFIC_CLASSES
from hwforge.rtl.gemm.top import GemmAccelerator, counters
from hwforge.rtl.lib.arbiter import MemArbiter
from hwforge.rtl.lib.memcount import CountingMemPort
from hwforge.rtl.lib.memport import MemPortSignature

KIND_AGGREGATION, KIND_COMBINATION = 0, 1
KINDS = ("aggregation", "combination")
HEADER_WORDS = 2
RECORD_WORDS = 16
SEQ_FAULTS = ("skip_last_layer",)
"""The sequencer's own deliberately broken variant: it never starts the last layer of the table."""
FAULTS = (*AGG_FAULTS, *GEMM_FAULTS, *SEQ_FAULTS)
GEMM_CLASS_MAP = {i: CLASSES.index(name) for i, name in enumerate(TRAFFIC_CLASSES)}
"""gemm traffic class -> snf class, by name: the combination's A operand (the previous aggregation's output or
the input features) is ``features``, weights and biases ``weights``, its results ``outputs``, its header,
descriptors and gather tables ``control``."""
COUNTERS = ("cycles", "bytes_read", "bytes_written", "busy_cycles", "stall_cycles",
            *(f"bytes_{c}" for c in CLASSES), "layers")


def record_counters(kind: str) -> tuple[str, ...]:
    """Counter names of one log record's words 1.. for a layer of ``kind``."""
    return AGG_COUNTERS if kind == "aggregation" else counters(classes=True)


assert max(len(AGG_COUNTERS), len(counters(classes=True))) < RECORD_WORDS


def check_fault(fault: str | None) -> None:
    if fault is not None and fault not in FAULTS:
        raise ConfigError(f"snf system: unknown fault {fault!r}; known faults: {', '.join(FAULTS)}")


class SnfSystem(wiring.Component):
    """Aggregation accelerator + combination engine + layer sequencer on one memory port.

    ``fault`` selects a broken variant of one part: an `SnfAccelerator` fault, a gemm fault (in the combination
    engine) or a `SEQ_FAULTS` one.
    """

    def __init__(self, agg: SnfConfig, comb: GemmConfig, fault: str | None = None):
        check_fault(fault)
        if comb.bus_width != agg.bus_width:
            raise ConfigError(f"snf system: the combination engine's bus ({comb.bus_width} bits) must be the "
                              f"aggregation's ({agg.bus_width} bits)")
        self.agg_cfg, self.comb_cfg, self.fault = agg, comb, fault
        super().__init__({
            "start": In(1), "done": Out(1),
            "mem": Out(MemPortSignature(32, agg.bus_width)),
            **{name: Out(unsigned(32)) for name in COUNTERS},
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        bw = self.agg_cfg.bus_width
        f = self.fault
        m.submodules.aggregation = agg = SnfAccelerator(self.agg_cfg, f if f in AGG_FAULTS else None,
                                                             classes=True)
        m.submodules.combination = comb = GemmAccelerator(self.comb_cfg, f if f in GEMM_FAULTS else None, classes=True)
        m.submodules.arb = arb = MemArbiter(3, 32, bw, n_classes=len(CLASSES))
        m.submodules.port = port = CountingMemPort(32, bw, classes=CLASSES)
        wiring.connect(m, arb.down, port.up)
        wiring.connect(m, port.down, wiring.flipped(self.mem))
        m.d.comb += port.req_class.eq(arb.down_class)

        base = Signal(32)
        for i, eng in ((1, agg), (2, comb)):
            up = arb.up[i]
            m.d.comb += [up.req.valid.eq(eng.mem.req.valid), up.req.payload.eq(eng.mem.req.payload),
                         up.req.payload.addr.eq(eng.mem.req.payload.addr + base),
                         eng.mem.req.ready.eq(up.req.ready),
                         eng.mem.resp.valid.eq(up.resp.valid), eng.mem.resp.payload.eq(up.resp.payload),
                         up.resp.ready.eq(eng.mem.resp.ready)]
        # classes: the aggregation accelerator forwards its engines' classes (``classes=True``); gemm's are mapped
        gemm_class = Signal(range(len(CLASSES)))
        with m.Switch(comb.req_class):
            for g, s in GEMM_CLASS_MAP.items():
                with m.Case(g):
                    m.d.comb += gemm_class.eq(s)
        m.d.comb += [arb.up_class[0].eq(C_CTRL), arb.up_class[1].eq(agg.req_class), arb.up_class[2].eq(gemm_class)]

        # ---- sequencer --------------------------------------------------------------------------------------
        ctrl = arb.up[0]
        m.d.comb += ctrl.resp.ready.eq(1)
        fire = Signal()
        m.d.comb += fire.eq(ctrl.req.valid & ctrl.req.ready)
        word = ctrl.resp.payload[:32]
        nlayers, log, kind, idx = Signal(32), Signal(32), Signal(), Signal(32)
        issued, got = Signal(2), Signal(2)
        j = Signal(range(RECORD_WORDS + 1))
        busy, done = Signal(), Signal()
        m.d.comb += [self.done.eq(done), port.enable.eq(busy)]
        with m.If(busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        m.d.comb += [self.bytes_read.eq(port.bytes_read), self.bytes_written.eq(port.bytes_written),
                     self.busy_cycles.eq(port.busy_cycles), self.stall_cycles.eq(port.stall_cycles)]
        for i, c in enumerate(CLASSES):
            m.d.comb += getattr(self, f"bytes_{c}").eq(port.class_bytes[i])
        last = nlayers - 1 if "skip_last_layer" == f else nlayers

        def read_pair(addr, first, second, next_state: str) -> None:
            """Read words ``addr`` and ``addr + 1`` into ``first`` and ``second``, then go to ``next_state``."""
            m.d.comb += [ctrl.req.valid.eq(issued < 2), ctrl.req.payload.addr.eq(addr + issued)]
            with m.If(fire):
                m.d.sync += issued.eq(issued + 1)
            with m.If(ctrl.resp.valid):
                m.d.sync += got.eq(got + 1)
                with m.If(got == 0):
                    m.d.sync += first.eq(word)
                with m.Else():
                    m.d.sync += second.eq(word)
                    m.d.sync += [issued.eq(0), got.eq(0)]
                    m.next = next_state

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += port.clear.eq(1)
                    m.d.sync += [done.eq(0), busy.eq(1), issued.eq(0), got.eq(0), idx.eq(0), self.cycles.eq(0),
                                 self.layers.eq(0)]
                    m.next = "HEADER"
            with m.State("HEADER"):
                read_pair(0, nlayers, log, "NEXT")
            with m.State("NEXT"):
                with m.If(idx >= last):
                    m.next = "FINISH"
                with m.Else():
                    m.next = "ENTRY"
            with m.State("ENTRY"):
                read_pair(HEADER_WORDS + (idx << 1), kind, base, "START")
            with m.State("START"):
                m.d.comb += [agg.start.eq(kind == KIND_AGGREGATION), comb.start.eq(kind == KIND_COMBINATION)]
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(Mux(kind == KIND_AGGREGATION, agg.done, comb.done)):
                    m.d.sync += j.eq(0)
                    m.next = "LOG"
            with m.State("LOG"):
                value = Signal(32)
                with m.Switch(j):
                    with m.Case(0):
                        m.d.comb += value.eq(kind)
                    for i in range(1, RECORD_WORDS):
                        with m.Case(i):
                            a = getattr(agg, AGG_COUNTERS[i - 1]) if i - 1 < len(AGG_COUNTERS) else 0
                            names = counters(classes=True)
                            g = getattr(comb, names[i - 1]) if i - 1 < len(names) else 0
                            m.d.comb += value.eq(Mux(kind == KIND_AGGREGATION, a, g))
                m.d.comb += [ctrl.req.valid.eq(1), ctrl.req.payload.write.eq(1), ctrl.req.payload.wdata.eq(value),
                             ctrl.req.payload.addr.eq(log + idx * RECORD_WORDS + j)]
                with m.If(fire):
                    m.d.sync += j.eq(j + 1)
                    with m.If(j == RECORD_WORDS - 1):
                        m.d.sync += [idx.eq(idx + 1), self.layers.eq(self.layers + 1)]
                        m.next = "NEXT"
            with m.State("FINISH"):
                m.d.sync += [done.eq(1), busy.eq(0)]
                m.next = "IDLE"
        return m
