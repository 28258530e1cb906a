"""One aggregation engine of the snf accelerator: graph reader, feature fetcher, MAC lanes, output writer.

Data flow inside an engine (all ready/valid or FIFO decoupled)::

    GraphReader --rows {v, deg}--> FeatureFetcher --meta {LINE|BEGIN|END}--> Aggregator --writes--> OutputWriter
                --edges {u, a}-->        |  line requests {vertex, line}         ^  line data (512 bit)
                                         +--> FeatureReadSignature (shared cache) +

- `GraphReader` streams the engine's destination rows of one round: chunks ``row0, row0 + stride, ...`` of
  ``chunk`` rows; per chunk it reads ``indptr[c0..c1]`` (pipelined), emits a row token per row, then reads the
  chunk's contiguous edge words (pipelined, credit-limited by its edge FIFO).
- `FeatureFetcher` (the replaceable feature reader) turns each edge into ``width`` line requests of the
  current slice and tells the aggregator what to do with each returned line.
- `Aggregator` multiplies each returned line by the edge value into ``lanes`` accumulators per cycle
  (read-modify-write of a transparent accumulator memory), then at the row end requantises the slice
  (``per_word`` `Requantizer` s) or, if the row's ``spill`` flag is set (tiling: the row has edges in a later
  tile), spills the raw accumulators; if its ``load`` flag is set (edges in an earlier tile) it reloads them at
  the row begin. The flags ride in the top bits of the row's ``indptr`` word (`hwforge.rtl.gcn.program.B_SKIP`
  and friends); a row with nothing to do in a tile is skipped by the graph reader, so the partial-sum traffic is
  one write and one read per (row, tile it has edges in) beyond its first.
- `OutputWriter` turns {addr, data, class} write tokens into memory writes (the SGCN target can swap it for
  a compressing writer).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hwforge.rtl.gcn.cache import FeatureReadSignature
from hwforge.rtl.gcn.config import LINES_IN_FLIGHT, SnfConfig
from hwforge.rtl.gcn.program import B_LOAD, B_SKIP, B_SPILL, INDPTR_BITS
from hwforge.rtl.lib.memport import MemPortSignature
from hwforge.rtl.lib.requant import LATENCY, Requantizer

CLASSES = ("topology", "features", "weights", "outputs", "psum", "control")
C_TOPO, C_FEAT, C_WEIGHTS, C_OUT, C_PSUM, C_CTRL = range(len(CLASSES))

K_LINE, K_BEGIN, K_END = 0, 1, 2
EDGE_DEPTH = 16
LINE_DEPTH = LINES_IN_FLIGHT
WDEPTH = 8

row_layout = data.StructLayout({"v": unsigned(32), "deg": unsigned(32), "load": unsigned(1), "spill": unsigned(1)})


def write_layout(bus_width: int) -> data.StructLayout:
    """Payload of the output writer's input stream: word address, data, traffic class."""
    return data.StructLayout({"addr": unsigned(32), "data": unsigned(bus_width), "cls": unsigned(3)})


def edge_layout(cfg: SnfConfig) -> data.StructLayout:
    return data.StructLayout({"u": unsigned(32), "a": signed(cfg.feat_bits)})


def meta_layout(cfg: SnfConfig) -> data.StructLayout:
    return data.StructLayout({"kind": unsigned(2), "j": unsigned(16), "a": signed(cfg.feat_bits),
                              "first": unsigned(1), "v": unsigned(32), "empty": unsigned(1),
                              "spill": unsigned(1)})


class RoundParams(wiring.Signature):
    """Per-round settings the controller broadcasts to every engine (constant while a round runs)."""

    def __init__(self):
        super().__init__({
            "n": Out(32), "chunk": Out(16), "stride": Out(32), "active": Out(4),
            "indptr": Out(32), "edges": Out(32), "row_lines": Out(16),
            "start_line": Out(16), "width": Out(16), "tile_first": Out(1), "tile_last": Out(1),
            "out_base": Out(32), "psum_base": Out(32), "shift": Out(6), "relu": Out(1),
        })


class GraphReader(wiring.Component):
    def __init__(self, cfg: SnfConfig, eid: int):
        self.cfg = cfg
        self.eid = eid
        super().__init__({
            "start": In(1), "idle": Out(1),
            "p": In(RoundParams()),
            "mem": Out(MemPortSignature(32, cfg.bus_width)),
            "rows": Out(stream.Signature(row_layout)),
            "edges": Out(stream.Signature(edge_layout(cfg))),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, p, mem = self.cfg, self.p, self.mem
        m.submodules.rowq = rowq = SyncFIFOBuffered(width=row_layout.size, depth=2 * cfg.max_chunk)
        el = edge_layout(cfg)
        m.submodules.edgeq = edgeq = SyncFIFOBuffered(width=el.size, depth=EDGE_DEPTH)
        m.d.comb += [self.rows.valid.eq(rowq.r_rdy), self.rows.payload.eq(rowq.r_data),
                     rowq.r_en.eq(self.rows.ready),
                     self.edges.valid.eq(edgeq.r_rdy), self.edges.payload.eq(edgeq.r_data),
                     edgeq.r_en.eq(self.edges.ready)]
        r0, c1, cnt, issued, got = (Signal(32, name=n) for n in ("r0", "c1", "cnt", "issued", "got"))
        pprev, e_lo, e_hi = Signal(32), Signal(32), Signal(32)
        outstanding = Signal(range(EDGE_DEPTH + 2))
        half = cfg.bus_width // 2
        m.d.comb += [mem.req.payload.write.eq(0), mem.resp.ready.eq(1)]
        req_fire = Signal()
        m.d.comb += req_fire.eq(mem.req.valid & mem.req.ready)
        word = mem.resp.payload
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(1)
                with m.If(self.start & (p.active > self.eid)):
                    m.d.sync += r0.eq(p.chunk * self.eid)
                    m.next = "CHUNK"
            with m.State("CHUNK"):
                end = r0 + p.chunk
                with m.If(r0 >= p.n):
                    m.next = "IDLE"
                with m.Elif(rowq.level <= cfg.max_chunk):
                    m.d.sync += [c1.eq(Mux(end > p.n, p.n, end)), issued.eq(0), got.eq(0)]
                    m.next = "INDPTR"
            with m.State("INDPTR"):
                m.d.comb += [mem.req.valid.eq(issued < c1 - r0 + 1),
                             mem.req.payload.addr.eq(p.indptr + r0 + issued)]
                with m.If(req_fire):
                    m.d.sync += issued.eq(issued + 1)
                # row pointer in the low INDPTR_BITS, the row's tile flags above (program.B_*): a row without
                # edges in this tile and no output due in it is skipped; load / spill drive the psum traffic
                ptr, flags = word[:INDPTR_BITS], word[INDPTR_BITS:32]
                with m.If(mem.resp.valid):
                    m.d.sync += [got.eq(got + 1), pprev.eq(ptr)]
                    with m.If(got == 0):
                        m.d.sync += e_lo.eq(ptr)
                    with m.Else():
                        m.d.comb += [rowq.w_en.eq(~flags[B_SKIP]),
                                     rowq.w_data.eq(Cat((r0 + got - 1)[:32], (ptr - pprev)[:32],
                                                        flags[B_LOAD],
                                                        flags[B_SPILL]))]
                    with m.If(got == c1 - r0):
                        m.d.sync += [e_hi.eq(ptr), outstanding.eq(0)]
                        m.next = "EDGES"
            with m.State("EDGES"):
                room = outstanding + edgeq.level < EDGE_DEPTH
                m.d.comb += [mem.req.valid.eq((e_lo < e_hi) & room),
                             mem.req.payload.addr.eq(p.edges + e_lo)]
                with m.If(req_fire):
                    m.d.sync += e_lo.eq(e_lo + 1)
                got_edge = mem.resp.valid
                m.d.sync += outstanding.eq(outstanding + req_fire - got_edge)
                with m.If(got_edge):
                    m.d.comb += [edgeq.w_en.eq(1),
                                 edgeq.w_data.eq(Cat(word[:min(half, 32)], Const(0, 32 - half) if half < 32 else Cat(),
                                                     word[half:half + cfg.feat_bits]))]
                with m.If((e_lo >= e_hi) & (outstanding == 0) & ~got_edge):
                    m.d.sync += r0.eq(r0 + p.stride)
                    m.next = "CHUNK"
        return m


class FeatureFetcher(wiring.Component):
    """Edges -> line requests of the current slice plus meta tokens for the aggregator."""

    def __init__(self, cfg: SnfConfig, fault: str | None = None):
        self.cfg = cfg
        self.fault = fault
        ml = meta_layout(cfg)
        super().__init__({
            "idle": Out(1), "reader_idle": In(1),
            "p": In(RoundParams()),
            "rows": In(stream.Signature(row_layout)),
            "edges": In(stream.Signature(edge_layout(cfg))),
            "feat": Out(FeatureReadSignature()),
            "meta": Out(stream.Signature(ml)),
            "line_taken": In(1),
            "line_accesses": Out(32), "clear": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, p = self.cfg, self.p
        v, deg, left, u, j = Signal(32), Signal(32), Signal(32), Signal(32), Signal(16)
        a = Signal(signed(cfg.feat_bits))
        firstedge, load, spill = Signal(), Signal(), Signal()
        inflight = Signal(range(LINE_DEPTH + 1))
        meta = self.meta.payload
        m.d.sync += inflight.eq(inflight + (self.feat.req.valid & self.feat.req.ready) - self.line_taken)
        with m.If(self.clear):
            m.d.sync += self.line_accesses.eq(0)
        with m.Elif(self.feat.req.valid & self.feat.req.ready):
            m.d.sync += self.line_accesses.eq(self.line_accesses + 1)
        m.d.comb += [self.feat.req.payload.vertex.eq(u), self.feat.req.payload.line.eq(p.start_line + j)]
        with m.FSM():
            with m.State("ROW"):
                m.d.comb += [self.idle.eq(self.reader_idle & ~self.rows.valid), self.rows.ready.eq(1)]
                with m.If(self.rows.valid):
                    m.d.sync += [v.eq(self.rows.payload.v), deg.eq(self.rows.payload.deg),
                                 left.eq(self.rows.payload.deg), firstedge.eq(1),
                                 load.eq(self.rows.payload.load), spill.eq(self.rows.payload.spill)]
                    with m.If(self.rows.payload.load):
                        m.next = "BEGIN"
                    with m.Else():
                        m.next = "ROWGO"
            with m.State("BEGIN"):
                m.d.comb += [self.meta.valid.eq(1), meta.kind.eq(K_BEGIN), meta.v.eq(v)]
                with m.If(self.meta.ready):
                    m.next = "ROWGO"
            with m.State("ROWGO"):
                with m.If(deg == 0):
                    m.next = "END"
                with m.Else():
                    m.next = "EDGE"
            with m.State("EDGE"):
                m.d.comb += self.edges.ready.eq(1)
                with m.If(self.edges.valid):
                    m.d.sync += [u.eq(self.edges.payload.u), a.eq(self.edges.payload.a), j.eq(0),
                                 left.eq(left - 1)]
                    if self.fault == "drop_last_edge":
                        with m.If(left == 1):
                            m.next = "END"
                        with m.Else():
                            m.next = "LINE"
                    else:
                        m.next = "LINE"
            with m.State("LINE"):
                ok = self.meta.ready & (inflight < LINE_DEPTH)
                m.d.comb += [self.feat.req.valid.eq(ok),
                             meta.kind.eq(K_LINE), meta.j.eq(j), meta.a.eq(a),
                             meta.first.eq(~load & firstedge), meta.v.eq(v),
                             self.meta.valid.eq(self.feat.req.ready & ok)]
                with m.If(self.feat.req.valid & self.feat.req.ready):
                    m.d.sync += j.eq(j + 1)
                    with m.If(j + 1 >= p.width):
                        m.d.sync += firstedge.eq(0)
                        with m.If(left == 0):
                            m.next = "END"
                        with m.Elif(self.edges.valid if self.fault != "drop_last_edge" else 0):
                            # the next edge is here: take it now instead of spending a cycle in EDGE
                            m.d.comb += self.edges.ready.eq(1)
                            m.d.sync += [u.eq(self.edges.payload.u), a.eq(self.edges.payload.a), j.eq(0),
                                         left.eq(left - 1)]
                        with m.Else():
                            m.next = "EDGE"
            with m.State("END"):
                m.d.comb += [self.meta.valid.eq(1), meta.kind.eq(K_END), meta.v.eq(v),
                             meta.empty.eq(~load & (deg == 0)), meta.spill.eq(spill)]
                with m.If(self.meta.ready):
                    m.next = "ROW"
        return m


class OutputWriter(wiring.Component):
    """{addr, data, cls} tokens -> memory writes (posted), class tag beside each request.

    The aggregator buffers its tokens in a FIFO; this default writer is a pass-through onto the memory
    port. A compressing writer (SGCN) can replace it behind the same stream."""

    def __init__(self, cfg: SnfConfig):
        self.cfg = cfg
        super().__init__({
            "inp": In(stream.Signature(write_layout(cfg.bus_width))),
            "mem": Out(MemPortSignature(32, cfg.bus_width)),
            "cls": Out(3), "idle": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        tok = self.inp.payload
        m.d.comb += [self.mem.req.valid.eq(self.inp.valid), self.mem.req.payload.addr.eq(tok.addr),
                     self.mem.req.payload.write.eq(1), self.mem.req.payload.wdata.eq(tok.data),
                     self.cls.eq(tok.cls), self.inp.ready.eq(self.mem.req.ready), self.idle.eq(~self.inp.valid)]
        return m


class Aggregator(wiring.Component):
    """MAC lanes, accumulator memory, requantisers, partial-sum spill/reload."""

    def __init__(self, cfg: SnfConfig):
        self.cfg = cfg
        super().__init__({
            "idle": Out(1),
            "p": In(RoundParams()),
            "meta": In(stream.Signature(meta_layout(cfg))),
            "line": In(stream.Signature(unsigned(512))),
            "line_taken": Out(1),
            "out": Out(stream.Signature(write_layout(cfg.bus_width))),
            "psum": Out(MemPortSignature(32, cfg.bus_width)),
            "bias_we": In(1), "bias_addr": In(16), "bias_lane": In(8), "bias_data": In(32),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg, p = self.cfg, self.p
        L, FB, AW = cfg.lanes, cfg.feat_bits, cfg.acc_bits
        EPL, WPL, PW, PA = cfg.elems_per_line, cfg.words_per_line, cfg.per_word, cfg.psum_per_word
        CPL = EPL // L
        lg_cpl = exact_log2(CPL)
        G_out, G_ps = L // PW, L // PA
        depth = cfg.max_row_lines * CPL
        psl = EPL // PA            # partial-sum words per line

        rd, wr = [], []
        for i in range(L):
            mem = Memory(shape=signed(AW), depth=depth, init=[])
            m.submodules[f"acc{i}"] = mem
            wp = mem.write_port()
            wr.append(wp)
            rd.append(mem.read_port(transparent_for=(wp,)))
        bias_rd = []
        for i in range(PW):
            mem = Memory(shape=signed(32), depth=cfg.max_row_lines * WPL, init=[])
            m.submodules[f"bias{i}"] = mem
            wp = mem.write_port()
            m.d.comb += [wp.en.eq(self.bias_we & (self.bias_lane == i)), wp.addr.eq(self.bias_addr),
                         wp.data.eq(self.bias_data)]
            bias_rd.append(mem.read_port(transparent_for=()))
        rqs = []
        for i in range(PW):
            rq = Requantizer(AW, FB, tag_width=1)
            m.submodules[f"rq{i}"] = rq
            m.d.comb += [rq.multiplier.eq(1), rq.shift.eq(p.shift), rq.relu.eq(p.relu)]
            rqs.append(rq)

        meta = self.meta.payload
        rd_addr = Signal(range(depth))
        for i in range(L):
            m.d.comb += rd[i].addr.eq(rd_addr)

        # ---- MAC pipeline: stage 0 issues the accumulator read, stage 1 adds and writes back ------------
        c = Signal(range(max(2, CPL)))
        s1_valid, s1_first = Signal(), Signal()
        s1_addr = Signal(range(depth))
        s1_a = Signal(signed(FB))
        s1_x = [Signal(signed(FB), name=f"s1_x{i}") for i in range(L)]
        s0 = Signal()
        line = self.line.payload
        chunk_bits = Signal(L * FB)
        m.d.comb += chunk_bits.eq(line.word_select(c, L * FB))
        m.d.sync += [s1_valid.eq(s0), s1_first.eq(meta.first), s1_a.eq(meta.a),
                     s1_addr.eq(rd_addr)]
        for i in range(L):
            m.d.sync += s1_x[i].eq(chunk_bits[i * FB:(i + 1) * FB])
        psum_we = Signal()
        psum_waddr = Signal(range(depth))
        psum_group = Signal(range(max(2, G_ps)))
        resp_word = self.psum.resp.payload
        for i in range(L):
            prod = Signal(signed(AW), name=f"prod{i}")
            m.d.comb += prod.eq(s1_a * s1_x[i])
            acc_in = Mux(s1_first, 0, rd[i].data)
            g, k = divmod(i, PA)
            m.d.comb += [wr[i].en.eq((s1_valid) | (psum_we & (psum_group == g))),
                         wr[i].addr.eq(Mux(s1_valid, s1_addr, psum_waddr)),
                         wr[i].data.eq(Mux(s1_valid, acc_in + prod, resp_word[32 * k:32 * k + AW]))]

        # ---- output / spill pipeline ---------------------------------------------------------------------
        ow = Signal(16)          # next word to issue
        nwords = Signal(16)
        inflight = Signal(range(WDEPTH + 1))
        o1_valid, o1_group, o1_w = Signal(), Signal(range(max(2, max(G_out, G_ps)))), Signal(16)
        empty = Signal()
        spill = Signal()         # this row end spills partial sums instead of writing outputs
        row_base = Signal(32)    # (v*row_lines + start_line)
        out_issue = Signal()
        o_push = Signal()
        m.d.sync += inflight.eq(inflight + out_issue - o_push)
        m.d.sync += [o1_valid.eq(out_issue), o1_w.eq(ow),
                     o1_group.eq(Mux(spill, ow & (G_ps - 1) if G_ps > 1 else 0,
                                     ow & (G_out - 1) if G_out > 1 else 0))]
        for i in range(PW):
            m.d.comb += bias_rd[i].addr.eq(p.start_line * WPL + ow)
        # select accumulators
        accs = [Mux(empty, 0, rd[i].data) for i in range(L)]
        grp_out = []
        for k in range(PW):
            s = Signal(signed(AW), name=f"osel{k}")
            with m.Switch(o1_group):
                for g in range(G_out):
                    with m.Case(g):
                        m.d.comb += s.eq(accs[g * PW + k])
            grp_out.append(s)
        for k in range(PW):
            m.d.comb += [rqs[k].i_valid.eq(o1_valid & ~spill), rqs[k].i_acc.eq(grp_out[k]),
                         rqs[k].i_bias.eq(bias_rd[k].data)]
        # output word address pipeline (delay o1_w by the requantiser latency)
        w_d = [o1_w]
        for i in range(LATENCY):
            s = Signal(16, name=f"ow_d{i}")
            m.d.sync += s.eq(w_d[-1])
            w_d.append(s)
        ps_words = []
        for k in range(PA):
            s = Signal(32, name=f"psel{k}")
            with m.Switch(o1_group):
                for g in range(G_ps):
                    with m.Case(g):
                        m.d.comb += s.eq(accs[g * PA + k].as_signed())
            ps_words.append(s)
        m.submodules.outq = outq = SyncFIFOBuffered(width=write_layout(cfg.bus_width).size, depth=WDEPTH)
        m.d.comb += [self.out.valid.eq(outq.r_rdy), self.out.payload.eq(outq.r_data), outq.r_en.eq(self.out.ready)]
        outp = write_layout(cfg.bus_width)(Signal(write_layout(cfg.bus_width).size, name="outp"))
        m.d.comb += [outq.w_data.eq(outp.as_value()), outq.w_en.eq(o_push)]
        with m.If(spill):
            m.d.comb += [o_push.eq(o1_valid), outp.data.eq(Cat(*ps_words)), outp.cls.eq(4),
                         outp.addr.eq(p.psum_base + row_base * psl + o1_w)]
        with m.Else():
            m.d.comb += [o_push.eq(rqs[0].o_valid), outp.data.eq(Cat(*[r.o_data for r in rqs])), outp.cls.eq(3),
                         outp.addr.eq(p.out_base + row_base * WPL + w_d[-1])]

        # ---- partial-sum reload ----------------------------------------------------------------------------
        pl_issued, pl_got = Signal(16), Signal(16)
        m.d.comb += [self.psum.req.payload.write.eq(0), self.psum.req.payload.addr.eq(
            p.psum_base + row_base * psl + pl_issued), self.psum.resp.ready.eq(1)]
        m.d.comb += [psum_waddr.eq(pl_got >> exact_log2(G_ps) if G_ps > 1 else pl_got),
                     psum_group.eq(pl_got & (G_ps - 1) if G_ps > 1 else 0)]

        with m.FSM():
            with m.State("RUN"):
                with m.If(self.meta.valid):
                    with m.Switch(meta.kind):
                        with m.Case(K_LINE):
                            with m.If(self.line.valid):
                                m.d.comb += [s0.eq(1), rd_addr.eq((meta.j << lg_cpl) + c)]
                                m.d.sync += c.eq(c + 1)
                                with m.If(c == CPL - 1):
                                    m.d.sync += c.eq(0)
                                    m.d.comb += [self.meta.ready.eq(1), self.line.ready.eq(1),
                                                 self.line_taken.eq(1)]
                        with m.Case(K_BEGIN):
                            m.d.sync += [row_base.eq(meta.v * p.row_lines + p.start_line), pl_issued.eq(0),
                                         pl_got.eq(0)]
                            m.next = "RELOAD"
                        with m.Case(K_END):
                            m.d.sync += [row_base.eq(meta.v * p.row_lines + p.start_line), ow.eq(0),
                                         empty.eq(meta.empty), spill.eq(meta.spill),
                                         nwords.eq(Mux(meta.spill, p.width * psl, p.width * WPL))]
                            with m.If(~s1_valid):
                                m.next = "DRAIN"
                with m.Else():
                    m.d.comb += self.idle.eq(~s1_valid & (outq.level == 0))
            with m.State("RELOAD"):
                total = p.width * psl
                m.d.comb += self.psum.req.valid.eq(pl_issued < total)
                with m.If(self.psum.req.valid & self.psum.req.ready):
                    m.d.sync += pl_issued.eq(pl_issued + 1)
                with m.If(self.psum.resp.valid):
                    m.d.comb += psum_we.eq(1)
                    m.d.sync += pl_got.eq(pl_got + 1)
                with m.If(pl_got == total):
                    m.d.comb += self.meta.ready.eq(1)
                    m.next = "RUN"
            with m.State("DRAIN"):
                # issue accumulator reads for every output word; results land in the write stream
                can = (ow < nwords) & (inflight + outq.level < WDEPTH - 1)
                lgo = exact_log2(G_out) if G_out > 1 else 0
                lgp = exact_log2(G_ps) if G_ps > 1 else 0
                m.d.comb += rd_addr.eq(Mux(spill, ow >> lgp, ow >> lgo))
                with m.If(can):
                    m.d.comb += out_issue.eq(1)
                    m.d.sync += ow.eq(ow + 1)
                with m.If((ow >= nwords) & (inflight == 0) & ~o1_valid):
                    m.d.comb += self.meta.ready.eq(1)
                    m.next = "RUN"
        return m


class Engine(wiring.Component):
    """One aggregation engine (``eid``): reader, fetcher, aggregator and writer behind three memory ports."""

    def __init__(self, cfg: SnfConfig, eid: int, fault: str | None = None):
        self.cfg = cfg
        self.eid = eid
        self.fault = fault
        super().__init__({
            "start": In(1), "busy": Out(1),
            "p": In(RoundParams()),
            "topo": Out(MemPortSignature(32, cfg.bus_width)),
            "psum": Out(MemPortSignature(32, cfg.bus_width)),
            "wr": Out(MemPortSignature(32, cfg.bus_width)), "wr_class": Out(3),
            "feat": Out(FeatureReadSignature()),
            "bias_we": In(1), "bias_addr": In(16), "bias_lane": In(8), "bias_data": In(32),
            "line_accesses": Out(32), "clear": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        m.submodules.reader = reader = GraphReader(cfg, self.eid)
        m.submodules.fetcher = fetcher = FeatureFetcher(cfg, self.fault)
        m.submodules.agg = agg = Aggregator(cfg)
        m.submodules.writer = writer = OutputWriter(cfg)
        ml = meta_layout(cfg)
        m.submodules.metaq = metaq = SyncFIFOBuffered(width=ml.size, depth=8)
        m.submodules.lineq = lineq = SyncFIFOBuffered(width=512, depth=LINE_DEPTH)
        for sub in (reader, fetcher, agg):
            for name in RoundParams().members:
                m.d.comb += getattr(sub.p, name).eq(getattr(self.p, name))
        m.d.comb += reader.start.eq(self.start)
        wiring.connect(m, reader.mem, wiring.flipped(self.topo))
        wiring.connect(m, reader.rows, fetcher.rows)
        wiring.connect(m, reader.edges, fetcher.edges)
        m.d.comb += fetcher.reader_idle.eq(reader.idle)
        # fetcher -> cache request; cache response -> line FIFO -> aggregator
        wiring.connect(m, fetcher.feat.req, wiring.flipped(self.feat.req))
        m.d.comb += [lineq.w_data.eq(self.feat.resp.payload), lineq.w_en.eq(self.feat.resp.valid),
                     self.feat.resp.ready.eq(lineq.w_rdy),
                     agg.line.valid.eq(lineq.r_rdy), agg.line.payload.eq(lineq.r_data),
                     lineq.r_en.eq(agg.line.ready), fetcher.line_taken.eq(agg.line_taken)]
        m.d.comb += [metaq.w_data.eq(fetcher.meta.payload), metaq.w_en.eq(fetcher.meta.valid),
                     fetcher.meta.ready.eq(metaq.w_rdy),
                     agg.meta.valid.eq(metaq.r_rdy), agg.meta.payload.eq(metaq.r_data),
                     metaq.r_en.eq(agg.meta.ready)]
        wiring.connect(m, agg.out, writer.inp)
        wiring.connect(m, agg.psum, wiring.flipped(self.psum))
        wiring.connect(m, writer.mem, wiring.flipped(self.wr))
        m.d.comb += [self.wr_class.eq(writer.cls),
                     agg.bias_we.eq(self.bias_we), agg.bias_addr.eq(self.bias_addr),
                     agg.bias_lane.eq(self.bias_lane), agg.bias_data.eq(self.bias_data),
                     self.line_accesses.eq(fetcher.line_accesses), fetcher.clear.eq(self.clear)]
        all_idle = reader.idle & fetcher.idle & (metaq.level == 0) & agg.idle & writer.idle
        with m.If(self.start):
            m.d.sync += self.busy.eq(1)
        with m.Elif(all_idle):
            m.d.sync += self.busy.eq(0)
        return m
