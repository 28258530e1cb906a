"""`SnfAccelerator`: the Slice-and-Forge aggregation accelerator's top component.

Ports: ``start`` (pulse), ``done`` (high from completion until the next start), ``mem`` (the shared memory
port, `MemPortSignature(32, bus_width)`), and 32-bit counters zeroed on ``start`` (`COUNTERS`).

The controller reads the descriptor (`hwforge.rtl.gcn.program.D`) from address 0, loads the bias into every
engine, flushes the cache, then runs *rounds*: for each tile, slices of the feature row from line 0 onwards,
the slice width chosen by the tuner (see `hwforge.rtl.gcn` docs). A round broadcasts its parameters, starts
all engines, waits until every engine is idle, appends ``(round, tile<<16 | start_line, width, cycles)`` to
the log region and updates the tuner.

Tuner (reconstruction; the paper's policy is not public): while ``round < NCAND`` the round uses candidate
width ``CAND[round]`` (clamped to the lines left in the row) and its cycles are measured; the best candidate
is the one with the fewest cycles per line (``cycles_a * width_b < cycles_b * width_a``, ties keep the
earlier one); every later round uses the best width. Rounds of different widths cover different numbers of
lines, so cycles per line is the fair comparison; all rounds start with a cache holding only lines of other
slices, so every trial is equally cold.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hwforge.errors import ConfigError
from hwforge.rtl.gcn.cache import FeatureCache
from hwforge.rtl.gcn.config import SnfConfig
from hwforge.rtl.gcn.engine import C_CTRL, C_FEAT, C_PSUM, C_TOPO, C_WEIGHTS, CLASSES, Engine, RoundParams
from hwforge.rtl.gcn.program import LOG_WORDS, D, desc_words
from hwforge.rtl.lib.arbiter import MemArbiter
from hwforge.rtl.lib.memcount import CountingMemPort
from hwforge.rtl.lib.memport import MemPortSignature

FAULTS = ("drop_last_edge", "stale_cache_line", "hit_before_fill")
COUNTERS = ("cycles", "bytes_read", "bytes_written", "busy_cycles", "stall_cycles",
            *(f"bytes_{c}" for c in CLASSES), "cache_hits", "cache_misses", "line_accesses", "rounds")


def check_fault(fault: str | None) -> None:
    if fault is not None and fault not in FAULTS:
        raise ConfigError(f"snf: unknown fault {fault!r}; known faults: {', '.join(FAULTS)}")


class SnfAccelerator(wiring.Component):
    """``classes=True`` adds a ``req_class`` output (index into `CLASSES`) valid with every memory request, so an
    enclosing design (`hwforge.rtl.gcn.system.SnfSystem`) can count this accelerator's traffic by class behind
    its own arbiter; a flag, so the default design and its Verilog stay as they are."""

    def __init__(self, cfg: SnfConfig, fault: str | None = None, classes: bool = False):
        check_fault(fault)
        self.cfg = cfg
        self.fault = fault
        self.classes = classes
        extra = {"req_class": Out(range(len(CLASSES)))} if classes else {}
        super().__init__({
            **extra,
            "start": In(1), "done": Out(1),
            "mem": Out(MemPortSignature(32, cfg.bus_width)),
            **{name: Out(unsigned(32)) for name in COUNTERS},
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        E = cfg.engines
        DW = desc_words(cfg)
        PW = cfg.per_word
        lg_pw = exact_log2(PW)

        engines = []
        for e in range(E):
            eng = Engine(cfg, e, self.fault)
            m.submodules[f"engine{e}"] = eng
            engines.append(eng)
        m.submodules.cache = cache = FeatureCache(cfg, E, self.fault)
        nports = 2 + 3 * E
        m.submodules.arb = arb = MemArbiter(nports, 32, cfg.bus_width, n_classes=len(CLASSES))
        m.submodules.port = port = CountingMemPort(32, cfg.bus_width, classes=CLASSES)
        wiring.connect(m, arb.down, port.up)
        wiring.connect(m, port.down, wiring.flipped(self.mem))
        m.d.comb += port.req_class.eq(arb.down_class)
        if self.classes:
            m.d.comb += self.req_class.eq(arb.down_class)
        ctrl = arb.up[0]
        wiring.connect(m, cache.mem, arb.up[1])
        m.d.comb += arb.up_class[1].eq(C_FEAT)
        for e, eng in enumerate(engines):
            wiring.connect(m, eng.topo, arb.up[2 + 3 * e])
            wiring.connect(m, eng.psum, arb.up[3 + 3 * e])
            wiring.connect(m, eng.wr, arb.up[4 + 3 * e])
            wiring.connect(m, eng.feat, cache.port[e])
            m.d.comb += [arb.up_class[2 + 3 * e].eq(C_TOPO), arb.up_class[3 + 3 * e].eq(C_PSUM),
                         arb.up_class[4 + 3 * e].eq(eng.wr_class)]

        desc = [Signal(32, name=f"desc_{i}") for i in range(DW)]
        params = {name: Signal(len(getattr(engines[0].p, name)), name=f"p_{name}") for name in RoundParams().members}
        for eng in engines:
            for name, sig in params.items():
                m.d.comb += getattr(eng.p, name).eq(sig)
        m.d.comb += [cache.x_base.eq(desc[D.X]), cache.row_lines.eq(desc[D.ROW_LINES])]

        busy = Signal()
        clear = Signal()
        m.d.comb += [port.clear.eq(clear), port.enable.eq(busy), self.done.eq(0)]
        done = Signal()
        m.d.comb += self.done.eq(done)
        with m.If(clear):
            m.d.sync += self.cycles.eq(0)
        with m.Elif(busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        for i, c in enumerate(CLASSES):
            m.d.comb += getattr(self, f"bytes_{c}").eq(port.class_bytes[i])
        m.d.comb += [self.bytes_read.eq(port.bytes_read), self.bytes_written.eq(port.bytes_written),
                     self.busy_cycles.eq(port.busy_cycles), self.stall_cycles.eq(port.stall_cycles),
                     self.cache_hits.eq(cache.hits), self.cache_misses.eq(cache.misses)]
        total = 0
        for eng in engines:
            m.d.comb += eng.clear.eq(clear)
            total = total + eng.line_accesses
        m.d.comb += self.line_accesses.eq(total)

        issued, got = Signal(32), Signal(32)
        ctrl_class = Signal(3)
        m.d.comb += [arb.up_class[0].eq(ctrl_class), ctrl.resp.ready.eq(1)]
        word = ctrl.resp.payload
        fire = Signal()
        m.d.comb += fire.eq(ctrl.req.valid & ctrl.req.ready)
        tile, start_line, rnd, width = Signal(16), Signal(16), Signal(32), Signal(16)
        best_w, best_c, have_best, rcycles = Signal(16), Signal(32), Signal(), Signal(32)
        li = Signal(range(LOG_WORDS + 1))
        start_eng = Signal()
        for eng in engines:
            m.d.comb += eng.start.eq(start_eng)
        any_busy = Signal()
        for eng in engines:
            any_busy = any_busy | eng.busy

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += [clear.eq(1), cache.flush.eq(1)]
                    m.d.sync += [done.eq(0), issued.eq(0), got.eq(0), self.rounds.eq(0)]
                    m.next = "DESC"
            with m.State("DESC"):
                m.d.comb += [busy.eq(1), ctrl_class.eq(C_CTRL), ctrl.req.valid.eq(issued < DW),
                             ctrl.req.payload.addr.eq(issued)]
                with m.If(fire):
                    m.d.sync += issued.eq(issued + 1)
                with m.If(ctrl.resp.valid):
                    m.d.sync += got.eq(got + 1)
                    with m.Switch(got):
                        for i in range(DW):
                            with m.Case(i):
                                m.d.sync += desc[i].eq(word[:32])
                with m.If(got == DW):
                    m.d.sync += [issued.eq(0), got.eq(0)]
                    m.next = "BIAS"
            with m.State("BIAS"):
                m.d.comb += [busy.eq(1), ctrl_class.eq(C_WEIGHTS), ctrl.req.valid.eq(issued < desc[D.NBIAS]),
                             ctrl.req.payload.addr.eq(desc[D.BIAS] + issued)]
                with m.If(fire):
                    m.d.sync += issued.eq(issued + 1)
                with m.If(ctrl.resp.valid):
                    m.d.sync += got.eq(got + 1)
                    for eng in engines:
                        m.d.comb += [eng.bias_we.eq(1), eng.bias_addr.eq(got >> lg_pw),
                                     eng.bias_lane.eq(got & (PW - 1)), eng.bias_data.eq(word[:32])]
                with m.If(got == desc[D.NBIAS]):
                    m.next = "WAIT_CACHE"
            with m.State("WAIT_CACHE"):
                m.d.comb += busy.eq(1)
                m.d.sync += [tile.eq(0), start_line.eq(0), rnd.eq(0), have_best.eq(0),
                             best_w.eq(desc[D.SLICE]), best_c.eq(0)]
                with m.If(~cache.busy):
                    m.next = "ROUND_SETUP"
            with m.State("ROUND_SETUP"):
                m.d.comb += busy.eq(1)
                cand = Signal(16)
                with m.Switch(rnd):
                    for i in range(8):
                        with m.Case(i):
                            m.d.comb += cand.eq(desc[D.CAND + i])
                w0 = Mux(rnd < desc[D.NCAND], cand, best_w)
                left = desc[D.ROW_LINES] - start_line
                m.d.sync += [width.eq(Mux(w0 > left, left, w0)), params["width"].eq(Mux(w0 > left, left, w0)),
                             params["start_line"].eq(start_line),
                             params["n"].eq(desc[D.N]), params["chunk"].eq(desc[D.CHUNK]),
                             params["stride"].eq(desc[D.CHUNK] * desc[D.ACTIVE]),
                             params["active"].eq(desc[D.ACTIVE]), params["row_lines"].eq(desc[D.ROW_LINES]),
                             params["tile_first"].eq(tile == 0), params["tile_last"].eq(tile + 1 >= desc[D.TILES]),
                             params["out_base"].eq(desc[D.OUT]), params["psum_base"].eq(desc[D.PSUM]),
                             params["shift"].eq(desc[D.SHIFT]), params["relu"].eq(desc[D.RELU][0]),
                             rcycles.eq(0)]
                with m.Switch(tile):
                    for t in range(cfg.max_tiles):
                        with m.Case(t):
                            m.d.sync += [params["indptr"].eq(desc[D.TOPO + 2 * t]),
                                         params["edges"].eq(desc[D.TOPO + 2 * t + 1])]
                m.next = "ROUND_START"
            with m.State("ROUND_START"):
                m.d.comb += [busy.eq(1), start_eng.eq(1)]
                m.d.sync += rcycles.eq(1)
                m.next = "ROUND_RUN"
            with m.State("ROUND_RUN"):
                m.d.comb += busy.eq(1)
                m.d.sync += rcycles.eq(rcycles + 1)
                with m.If(~any_busy):
                    m.d.sync += li.eq(0)
                    m.next = "LOG"
            with m.State("LOG"):
                m.d.comb += [busy.eq(1), ctrl_class.eq(C_CTRL), ctrl.req.valid.eq(1),
                             ctrl.req.payload.write.eq(1),
                             ctrl.req.payload.addr.eq(desc[D.LOG] + (rnd << 2) + li)]
                with m.Switch(li):
                    with m.Case(0):
                        m.d.comb += ctrl.req.payload.wdata.eq(rnd)
                    with m.Case(1):
                        m.d.comb += ctrl.req.payload.wdata.eq(Cat(start_line, tile))
                    with m.Case(2):
                        m.d.comb += ctrl.req.payload.wdata.eq(width)
                    with m.Default():
                        m.d.comb += ctrl.req.payload.wdata.eq(rcycles)
                with m.If(fire):
                    m.d.sync += li.eq(li + 1)
                    with m.If(li == LOG_WORDS - 1):
                        m.next = "TUNE"
            with m.State("TUNE"):
                m.d.comb += busy.eq(1)
                with m.If(rnd < desc[D.NCAND]):
                    with m.If(~have_best | (rcycles * best_w < best_c * width)):
                        m.d.sync += [best_w.eq(width), best_c.eq(rcycles), have_best.eq(1)]
                m.d.sync += [rnd.eq(rnd + 1), self.rounds.eq(self.rounds + 1)]
                with m.If(start_line + width >= desc[D.ROW_LINES]):
                    m.d.sync += [start_line.eq(0), tile.eq(tile + 1)]
                    with m.If(tile + 1 >= desc[D.TILES]):
                        m.next = "FINISH"
                    with m.Else():
                        m.next = "ROUND_SETUP"
                with m.Else():
                    m.d.sync += start_line.eq(start_line + width)
                    m.next = "ROUND_SETUP"
            with m.State("FINISH"):
                m.d.comb += busy.eq(1)
                m.d.sync += done.eq(1)
                m.next = "IDLE"
        return m
