"""The shared, set-associative feature cache of the snf accelerator.

- 64-byte lines, ``cfg.cache_kb`` KiB, ``cfg.ways`` ways, true LRU (an age per way and set; the accessed way
  gets age 0, younger ways age by one; the victim is the lowest invalid way, else the way of age ways-1).
- A request names a feature line as (vertex, line-in-row); the cache computes the line number
  ``vertex * row_lines + line`` (relative to the feature base ``x_base``, which is line aligned), so a slice of
  a row is a run of whole lines and lines of different slices never alias.
- The set index is the XOR-fold of the line number (``la[0:sb] ^ la[sb:2sb] ^ ...``, `set_index`) and the
  tag is ``la >> sb``: with plain modulo indexing a one-line slice of rows of ``row_lines`` lines would touch
  only ``sets / gcd(sets, row_lines)`` sets, so narrow slices could never use the whole cache.
- One request at a time (blocking on a miss), arbitrated round-robin between the engines' request streams.
  A hit costs two cycles (tag lookup, then the line-wide data read; the next request is accepted while the
  hit is answered); a miss reads the line as ``words_per_line`` pipelined bus reads, answers the requester with
  the assembled line and fills the victim way.
- ``flush`` (pulse) invalidates every set (one set per cycle; ``busy`` is high meanwhile) and zeroes the
  ``hits`` / ``misses`` counters, which count lookups.

Fault ``stale_cache_line`` ignores the valid bit on lookup, so a line that was invalidated (or never filled)
but whose stale tag matches is answered with the old data in the data memory.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hwforge.rtl.gcn.config import LINE_BITS, SnfConfig
from hwforge.rtl.lib.memport import MemPortSignature

LA_BITS = 28
"""Bits of a line number (relative to the feature base)."""

feature_request_layout = data.StructLayout({"vertex": unsigned(32), "line": unsigned(16)})


def set_index(la: int, sets: int) -> int:
    """Python twin of the hardware's set index: XOR-fold of the line number in ``log2(sets)``-bit pieces."""
    sb = sets.bit_length() - 1
    s = 0
    for k in range(0, LA_BITS, sb):
        s ^= (la >> k) & (sets - 1)
    return s


def _fold(la, sb: int):
    parts = [la[k:min(k + sb, LA_BITS)] for k in range(0, LA_BITS, sb)]
    out = parts[0]
    for q in parts[1:]:
        out = out ^ q
    return out[:sb]


class FeatureReadSignature(wiring.Signature):
    """A feature-line reader as seen from its user (an engine): ``req`` {vertex, line} out, ``resp`` in.

    Responses (one 512-bit line each, element 0 in the low bits, packed like memory) come back in request
    order. This is the seam where the SGCN target plugs a compressed-feature reader in instead of the cache.
    """

    def __init__(self):
        super().__init__({
            "req": Out(stream.Signature(feature_request_layout)),
            "resp": In(stream.Signature(unsigned(LINE_BITS))),
        })


class FeatureCache(wiring.Component):
    def __init__(self, cfg: SnfConfig, n_ports: int, fault: str | None = None):
        self.cfg = cfg
        self.n_ports = n_ports
        self.fault = fault
        super().__init__({
            "port": In(FeatureReadSignature()).array(n_ports),
            "mem": Out(MemPortSignature(32, cfg.bus_width)),
            "x_base": In(32), "row_lines": In(16),
            "flush": In(1), "busy": Out(1),
            "hits": Out(32), "misses": Out(32),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        ways, sets = cfg.ways, cfg.sets
        sb = exact_log2(sets)
        wb = exact_log2(ways)
        tagw = LA_BITS - sb
        ab = max(1, wb)
        wpl = cfg.words_per_line
        bw = cfg.bus_width
        n = self.n_ports

        tag_mems, tag_rd, tag_wr = [], [], []
        for w in range(ways):
            mem = Memory(shape=unsigned(tagw + 1), depth=sets, init=[])
            m.submodules[f"tag{w}"] = mem
            tag_mems.append(mem)
            tag_wr.append(mem.write_port())
            tag_rd.append(mem.read_port(transparent_for=()))
        m.submodules.lru = lru_mem = Memory(shape=unsigned(ways * ab), depth=sets, init=[])
        lru_wr = lru_mem.write_port()
        lru_rd = lru_mem.read_port(transparent_for=())
        m.submodules.data = data_mem = Memory(shape=unsigned(LINE_BITS), depth=cfg.cache_lines, init=[])
        d_wr = data_mem.write_port()
        d_rd = data_mem.read_port(transparent_for=())

        # ---- request arbitration (round-robin) -------------------------------------------------------------
        rr = Signal(range(n))
        chosen = Signal(range(n))
        anyv = Signal()
        for i in reversed(range(n)):
            with m.If(self.port[i].req.valid):
                m.d.comb += [chosen.eq(i), anyv.eq(1)]
        for i in reversed(range(n)):
            with m.If(self.port[i].req.valid & (i >= rr)):
                m.d.comb += chosen.eq(i)
        in_vertex, in_line = Signal(32), Signal(16)
        with m.Switch(chosen):
            for i in range(n):
                with m.Case(i):
                    m.d.comb += [in_vertex.eq(self.port[i].req.payload.vertex),
                                 in_line.eq(self.port[i].req.payload.line)]
        in_la = Signal(LA_BITS)
        m.d.comb += in_la.eq(in_vertex * self.row_lines + in_line)

        accept = Signal()          # take a new request this cycle
        la = Signal(LA_BITS)
        owner = Signal(range(n))
        set_q = Signal(max(1, sb))
        tag_q = Signal(tagw)
        m.d.comb += [set_q.eq(_fold(la, sb)), tag_q.eq(la[sb:])]
        rd_set = Signal(max(1, sb))
        m.d.comb += rd_set.eq(Mux(accept, _fold(in_la, sb), set_q))
        for w in range(ways):
            m.d.comb += tag_rd[w].addr.eq(rd_set)
        m.d.comb += lru_rd.addr.eq(rd_set)
        for i in range(n):
            m.d.comb += self.port[i].req.ready.eq(accept & (chosen == i))
        with m.If(accept):
            m.d.sync += [la.eq(in_la), owner.eq(chosen), rr.eq(Mux(chosen == n - 1, 0, chosen + 1))]

        # ---- lookup -----------------------------------------------------------------------------------------
        ages = [Signal(ab, name=f"age{w}") for w in range(ways)]
        valid = [Signal(name=f"valid{w}") for w in range(ways)]
        match = [Signal(name=f"match{w}") for w in range(ways)]
        for w in range(ways):
            m.d.comb += [ages[w].eq(lru_rd.data[w * ab:(w + 1) * ab]), valid[w].eq(tag_rd[w].data[tagw])]
            ok = Const(1) if self.fault == "stale_cache_line" else valid[w]
            m.d.comb += match[w].eq(ok & (tag_rd[w].data[:tagw] == tag_q))
        hit = Signal()
        hway = Signal(max(1, wb))
        for w in reversed(range(ways)):
            with m.If(match[w]):
                m.d.comb += [hit.eq(1), hway.eq(w)]
        victim = Signal(max(1, wb))
        for w in reversed(range(ways)):
            with m.If(ages[w] == ways - 1):
                m.d.comb += victim.eq(w)
        for w in reversed(range(ways)):
            with m.If(~valid[w]):
                m.d.comb += victim.eq(w)

        def touched(way) -> Signal:
            """The LRU word after an access to ``way``."""
            old = Signal(ab)
            with m.Switch(way):
                for w in range(ways):
                    with m.Case(w):
                        m.d.comb += old.eq(ages[w])
            new = []
            for w in range(ways):
                new.append(Mux(way == w, 0, Mux(ages[w] < old, ages[w] + 1, ages[w]))[:ab])
            s = Signal(ways * ab)
            m.d.comb += s.eq(Cat(*new))
            return s

        lru_hit = touched(hway)
        way_q = Signal(max(1, wb))
        lru_q = Signal(ways * ab)
        lru_miss = touched(victim)

        daddr = Signal(range(cfg.cache_lines))      # held between LOOKUP and RESP
        hit_line = Signal(range(cfg.cache_lines))
        use_lookup = Signal()
        d_line = Signal(range(cfg.cache_lines))
        m.d.comb += [hit_line.eq(Cat(hway, set_q) if wb else set_q),
                     d_rd.addr.eq(Mux(use_lookup, hit_line, daddr))]
        fill = Signal(LINE_BITS)
        from_fill = Signal()
        issued = Signal(range(wpl + 1))
        got = Signal(range(wpl + 1))
        flush_set = Signal(range(sets + 1))
        resp_data = Signal(LINE_BITS)
        m.d.comb += resp_data.eq(Mux(from_fill, fill, d_rd.data))
        for i in range(n):
            m.d.comb += self.port[i].resp.payload.eq(resp_data)
        m.d.comb += self.mem.req.payload.write.eq(0)
        lg_wpl = exact_log2(wpl)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.flush):
                    m.d.sync += [flush_set.eq(0), self.hits.eq(0), self.misses.eq(0)]
                    m.next = "FLUSH"
                with m.Else():
                    m.d.comb += accept.eq(anyv)
                    with m.If(anyv):
                        m.next = "LOOKUP"
            with m.State("FLUSH"):
                m.d.comb += self.busy.eq(1)
                for w in range(ways):
                    m.d.comb += [tag_wr[w].en.eq(1), tag_wr[w].addr.eq(flush_set), tag_wr[w].data.eq(0)]
                m.d.comb += [lru_wr.en.eq(1), lru_wr.addr.eq(flush_set),
                             lru_wr.data.eq(Cat(*[Const(w, ab) for w in range(ways)]))]
                m.d.sync += flush_set.eq(flush_set + 1)
                with m.If(flush_set == sets - 1):
                    m.next = "IDLE"
            with m.State("LOOKUP"):
                with m.If(hit):
                    m.d.sync += [self.hits.eq(self.hits + 1), from_fill.eq(0)]
                    m.d.comb += [lru_wr.en.eq(1), lru_wr.addr.eq(set_q), lru_wr.data.eq(lru_hit),
                                 use_lookup.eq(1)]
                    m.d.sync += daddr.eq(hit_line)
                    m.next = "RESP"
                with m.Else():
                    m.d.sync += [self.misses.eq(self.misses + 1), from_fill.eq(1), way_q.eq(victim),
                                 lru_q.eq(lru_miss), issued.eq(0), got.eq(0)]
                    m.next = "FILL"
            with m.State("FILL"):
                m.d.comb += [self.mem.req.valid.eq(issued < wpl),
                             self.mem.req.payload.addr.eq(self.x_base + (la << lg_wpl) + issued),
                             self.mem.resp.ready.eq(1)]
                with m.If(self.mem.req.valid & self.mem.req.ready):
                    m.d.sync += issued.eq(issued + 1)
                with m.If(self.mem.resp.valid):
                    m.d.sync += [fill.eq(Cat(fill[bw:], self.mem.resp.payload)), got.eq(got + 1)]
                with m.If(got == wpl):
                    m.d.comb += [d_line.eq(Cat(way_q, set_q) if wb else set_q),
                                 d_wr.en.eq(1), d_wr.addr.eq(d_line), d_wr.data.eq(fill),
                                 lru_wr.en.eq(1), lru_wr.addr.eq(set_q), lru_wr.data.eq(lru_q)]
                    for w in range(ways):
                        m.d.comb += [tag_wr[w].en.eq(way_q == w), tag_wr[w].addr.eq(set_q),
                                     tag_wr[w].data.eq(Cat(tag_q, Const(1, 1)))]
                    m.next = "RESP"
            with m.State("RESP"):
                for i in range(n):
                    m.d.comb += self.port[i].resp.valid.eq(owner == i)
                rdy = Signal()
                with m.Switch(owner):
                    for i in range(n):
                        with m.Case(i):
                            m.d.comb += rdy.eq(self.port[i].resp.ready)
                with m.If(rdy):
                    with m.If(self.flush):
                        m.d.sync += [flush_set.eq(0), self.hits.eq(0), self.misses.eq(0)]
                        m.next = "FLUSH"
                    with m.Else():
                        m.d.comb += accept.eq(anyv)
                        with m.If(anyv):
                            m.next = "LOOKUP"
                        with m.Else():
                            m.next = "IDLE"
        return m
