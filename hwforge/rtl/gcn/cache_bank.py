"""One bank of the snf feature cache: tag/LRU/data arrays, a two-stage lookup pipeline and the MSHR file.

A bank owns the sets whose index has its number in the low ``log2(cache_banks)`` bits (`bank_of`), so every
line lives in exactly one bank and banks never share state; each bank looks up one request per cycle.

Lookup (requests ``{eng, seq, la}``; ``eng``/``seq`` name the requester and its reorder slot):

- stage 0 reads the tags and the LRU word of the set (read ports transparent to the writes of stage 1, so a
  lookup right behind a miss to the same set sees the new tag);
- stage 1 compares and acts. All tag and LRU state changes happen here, in lookup order, exactly as in a
  blocking cache: a tag match touches its way, a miss picks the victim (lowest invalid way, else the oldest),
  writes the new tag *at once* and touches the victim. So with one requester the hit/miss sequence equals the
  sequential LRU model (`hwforge.rtl.gcn.cache_model`) whatever the memory timing. Then:

  - tag match and no fill of that line pending: a *hit*, the line-wide data read; the data lands one cycle
    later in the ``hit`` queue;
  - tag match while an MSHR is fetching that line: *merge* (counted as a hit, as in the sequential model): the
    requester joins the MSHR's waiter list (`MERGE_DEPTH` entries; a full list stalls the stage);
  - no match: *miss*: allocate a free MSHR (none free: stall), record {line, way, requester} and queue a fill
    request ``{la, id}``.

  Stalling stage 1 is deadlock free because fills never need it: they write the data array through their
  own port and answer their waiters on the ``ans`` stream.

Fill (``fill`` stream, ``{id, data}``, from `hwforge.rtl.gcn.cache_fill.LineFiller`, in the order the bank
queued its fill requests): the bank writes the line into the way its MSHR reserved, marks the MSHR *filled*
(from the next cycle on, lookups of the line are ordinary hits) and answers the waiters one per cycle on
``ans``; then the MSHR is free. A way whose line is still being fetched can be evicted (its tag is
overwritten at once); the old fill still arrives first (fills of a bank complete in allocation order), so the
later fill of the new line overwrites it before any hit can read the way, and the old waiters are answered
from the fill data, never from the array.

Faults: ``stale_cache_line`` ignores the valid bit on lookup; ``hit_before_fill`` ignores pending MSHRs, so a
lookup that finds the tag of a line still being fetched reads the data array before the fill has written it.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from hwforge.rtl.gcn.config import LINE_BITS, LINES_IN_FLIGHT, SnfConfig

LA_BITS = 28
"""Bits of a line number (relative to the feature base)."""
MERGE_DEPTH = 4
"""Requesters one MSHR can answer (the first miss plus merges); a further merge waits for the fill."""
HIT_DEPTH = 4
"""Entries of a bank's hit queue (a hit is only looked up when its data has a place to go)."""

FREE, PENDING, FILLED = 0, 1, 2


def fold(la, sb: int):
    """The set index of line number ``la``: XOR-fold in ``sb``-bit pieces (see `set_index`)."""
    parts = [la[k:min(k + sb, LA_BITS)] for k in range(0, LA_BITS, sb)]
    out = parts[0]
    for q in parts[1:]:
        out = out ^ q
    return out[:sb]


def set_index(la: int, sets: int) -> int:
    """Python twin of the hardware's set index: XOR-fold of the line number in ``log2(sets)``-bit pieces."""
    sb = sets.bit_length() - 1
    s = 0
    for k in range(0, LA_BITS, sb):
        s ^= (la >> k) & (sets - 1)
    return s


def bank_of(la: int, sets: int, banks: int) -> int:
    """The bank that holds line ``la``: the low bits of its set index."""
    return set_index(la, sets) & (banks - 1)


def requester_layout(n_ports: int) -> data.StructLayout:
    return data.StructLayout({"eng": unsigned(max(1, ceil_log2(n_ports))),
                              "seq": unsigned(max(1, ceil_log2(LINES_IN_FLIGHT)))})


def bank_request_layout(n_ports: int) -> data.StructLayout:
    return data.StructLayout({"who": requester_layout(n_ports), "la": unsigned(LA_BITS)})


def bank_response_layout(n_ports: int) -> data.StructLayout:
    return data.StructLayout({"who": requester_layout(n_ports), "data": unsigned(LINE_BITS)})


def fill_request_layout(cfg: SnfConfig) -> data.StructLayout:
    return data.StructLayout({"la": unsigned(LA_BITS), "id": unsigned(max(1, ceil_log2(cfg.mshrs)))})


def fill_layout(cfg: SnfConfig) -> data.StructLayout:
    return data.StructLayout({"id": unsigned(max(1, ceil_log2(cfg.mshrs))), "data": unsigned(LINE_BITS)})


class CacheBank(wiring.Component):
    """Bank ``bank`` of ``cfg.cache_banks``: lookups on ``req``, hit data on ``hit``, fill answers on ``ans``,
    misses on ``fill_req`` and their lines back on ``fill``; ``hit_pulse`` / ``miss_pulse`` count lookups."""

    def __init__(self, cfg: SnfConfig, n_ports: int, fault: str | None = None):
        self.cfg = cfg
        self.n_ports = n_ports
        self.fault = fault
        super().__init__({
            "req": In(stream.Signature(bank_request_layout(n_ports))),
            "hit": Out(stream.Signature(bank_response_layout(n_ports))),
            "ans": Out(stream.Signature(bank_response_layout(n_ports))),
            "fill_req": Out(stream.Signature(fill_request_layout(cfg))),
            "fill": In(stream.Signature(fill_layout(cfg))),
            "flush": In(1), "busy": Out(1),
            "hit_pulse": Out(1), "miss_pulse": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        cfg = self.cfg
        ways, M = cfg.ways, cfg.mshrs
        sb = exact_log2(cfg.sets)
        bb = exact_log2(cfg.cache_banks)
        lsets = cfg.sets // cfg.cache_banks
        wb = exact_log2(ways)
        ab = max(1, wb)
        tagw = LA_BITS - sb
        who_l = requester_layout(self.n_ports)

        def local_set(la):
            return fold(la, sb)[bb:]

        def line_addr(way, lset):
            return Cat(way[:wb], lset) if wb else lset

        tag_wr, tag_rd = [], []
        for w in range(ways):
            mem = Memory(shape=unsigned(tagw + 1), depth=lsets, init=[])
            m.submodules[f"tag{w}"] = mem
            wp = mem.write_port()
            tag_wr.append(wp)
            tag_rd.append(mem.read_port(transparent_for=(wp,)))
        m.submodules.lru = lru_mem = Memory(shape=unsigned(ways * ab), depth=lsets, init=[])
        lru_wr = lru_mem.write_port()
        lru_rd = lru_mem.read_port(transparent_for=(lru_wr,))
        m.submodules.data = data_mem = Memory(shape=unsigned(LINE_BITS), depth=lsets * ways, init=[])
        d_wr = data_mem.write_port()
        d_rd = data_mem.read_port(transparent_for=())

        # ---- MSHR file (registers) --------------------------------------------------------------------------
        state = [Signal(2, name=f"mshr{j}_state") for j in range(M)]
        m_la = [Signal(LA_BITS, name=f"mshr{j}_la") for j in range(M)]
        m_way = [Signal(max(1, wb), name=f"mshr{j}_way") for j in range(M)]
        m_cnt = [Signal(range(MERGE_DEPTH + 1), name=f"mshr{j}_count") for j in range(M)]
        m_who = [[Signal(who_l, name=f"mshr{j}_who{k}") for k in range(MERGE_DEPTH)] for j in range(M)]

        # ---- flush ---------------------------------------------------------------------------------------------
        flushing = Signal()
        flush_set = Signal(range(lsets + 1))
        with m.If(self.flush):
            m.d.sync += [flushing.eq(1), flush_set.eq(0)]
        with m.Elif(flushing):
            m.d.sync += flush_set.eq(flush_set + 1)
            with m.If(flush_set == lsets - 1):
                m.d.sync += flushing.eq(0)
        m.d.comb += self.busy.eq(flushing)

        # ---- stage 0: accept, read tags and LRU ----------------------------------------------------------------
        s1_valid = Signal()
        s1_who = Signal(who_l)
        s1_la = Signal(LA_BITS)
        s1_done = Signal()
        advance = Signal()
        m.d.comb += [advance.eq(~s1_valid | s1_done), self.req.ready.eq(advance & ~flushing & ~self.flush)]
        accept = Signal()
        m.d.comb += accept.eq(self.req.valid & self.req.ready)
        set_q = Signal(max(1, sb - bb))
        m.d.comb += set_q.eq(local_set(s1_la))
        rd_set = Signal(max(1, sb - bb))
        m.d.comb += rd_set.eq(Mux(accept, local_set(self.req.payload.la), set_q))
        for w in range(ways):
            m.d.comb += tag_rd[w].addr.eq(rd_set)
        m.d.comb += lru_rd.addr.eq(rd_set)
        with m.If(advance):
            m.d.sync += s1_valid.eq(accept)
        with m.If(accept):
            m.d.sync += [s1_who.eq(self.req.payload.who), s1_la.eq(self.req.payload.la)]

        # ---- stage 1: compare, then hit / merge / miss ---------------------------------------------------------
        tag_q = s1_la[sb:]
        ages = [Signal(ab, name=f"age{w}") for w in range(ways)]
        valid = [Signal(name=f"valid{w}") for w in range(ways)]
        match = [Signal(name=f"match{w}") for w in range(ways)]
        for w in range(ways):
            m.d.comb += [ages[w].eq(lru_rd.data[w * ab:(w + 1) * ab]), valid[w].eq(tag_rd[w].data[tagw])]
            ok = Const(1) if self.fault == "stale_cache_line" else valid[w]
            m.d.comb += match[w].eq(ok & (tag_rd[w].data[:tagw] == tag_q))
        found = Signal()
        hway = Signal(max(1, wb))
        for w in reversed(range(ways)):
            with m.If(match[w]):
                m.d.comb += [found.eq(1), hway.eq(w)]
        victim = Signal(max(1, wb))
        for w in reversed(range(ways)):
            with m.If(ages[w] == ways - 1):
                m.d.comb += victim.eq(w)
        for w in reversed(range(ways)):
            with m.If(~valid[w]):
                m.d.comb += victim.eq(w)
        way = Signal(max(1, wb))
        m.d.comb += way.eq(Mux(found, hway, victim))
        old_age = Signal(ab)
        with m.Switch(way):
            for w in range(ways):
                with m.Case(w):
                    m.d.comb += old_age.eq(ages[w])
        touched = Cat(*[Mux(way == w, 0, Mux(ages[w] < old_age, ages[w] + 1, ages[w]))[:ab] for w in range(ways)])

        pend = Signal()                      # a fill of this line is in flight
        pend_id = Signal(range(M))
        if self.fault != "hit_before_fill":
            for j in reversed(range(M)):
                with m.If((state[j] == PENDING) & (m_la[j] == s1_la)):
                    m.d.comb += [pend.eq(1), pend_id.eq(j)]
        free_any = Signal()
        free_id = Signal(range(M))
        for j in reversed(range(M)):
            with m.If(state[j] == FREE):
                m.d.comb += [free_any.eq(1), free_id.eq(j)]
        pend_cnt = Signal(range(MERGE_DEPTH + 1))
        with m.Switch(pend_id):
            for j in range(M):
                with m.Case(j):
                    m.d.comb += pend_cnt.eq(m_cnt[j])

        m.submodules.hitq = hitq = SyncFIFO(width=bank_response_layout(self.n_ports).size, depth=HIT_DEPTH)
        m.submodules.fillq = fillq = SyncFIFO(width=fill_request_layout(cfg).size, depth=M)
        s2_valid = Signal()
        s2_who = Signal(who_l)
        hit_room = Signal()
        m.d.comb += hit_room.eq(hitq.level + s2_valid < HIT_DEPTH)
        is_hit = found & ~pend
        is_merge = found & pend
        m.d.comb += s1_done.eq(s1_valid & Mux(found, Mux(pend, pend_cnt < MERGE_DEPTH, hit_room), free_any))
        m.d.comb += d_rd.addr.eq(line_addr(hway, set_q))
        m.d.sync += [s2_valid.eq(s1_done & is_hit), s2_who.eq(s1_who)]
        m.d.comb += [self.hit_pulse.eq(s1_done & found), self.miss_pulse.eq(s1_done & ~found)]
        fq = fill_request_layout(cfg)(fillq.w_data)
        m.d.comb += [fq.la.eq(s1_la), fq.id.eq(free_id), fillq.w_en.eq(s1_done & ~found)]
        with m.If(s1_done):
            m.d.comb += [lru_wr.en.eq(1), lru_wr.addr.eq(set_q), lru_wr.data.eq(touched)]
            with m.If(is_merge):
                for j in range(M):
                    with m.If(pend_id == j):
                        m.d.sync += m_cnt[j].eq(m_cnt[j] + 1)
                        for k in range(MERGE_DEPTH):
                            with m.If(m_cnt[j] == k):
                                m.d.sync += m_who[j][k].eq(s1_who)
            with m.If(~found):
                for w in range(ways):
                    m.d.comb += [tag_wr[w].en.eq(victim == w), tag_wr[w].addr.eq(set_q),
                                 tag_wr[w].data.eq(Cat(tag_q, Const(1, 1)))]
                for j in range(M):
                    with m.If(free_id == j):
                        m.d.sync += [state[j].eq(PENDING), m_la[j].eq(s1_la), m_way[j].eq(victim),
                                     m_cnt[j].eq(1), m_who[j][0].eq(s1_who)]
        with m.If(flushing):
            for w in range(ways):
                m.d.comb += [tag_wr[w].en.eq(1), tag_wr[w].addr.eq(flush_set), tag_wr[w].data.eq(0)]
            m.d.comb += [lru_wr.en.eq(1), lru_wr.addr.eq(flush_set),
                         lru_wr.data.eq(Cat(*[Const(w, ab) for w in range(ways)]))]

        # stage 2: the hit's data, one cycle after the read
        hq = bank_response_layout(self.n_ports)(hitq.w_data)
        m.d.comb += [hq.who.eq(s2_who), hq.data.eq(d_rd.data), hitq.w_en.eq(s2_valid),
                     self.hit.valid.eq(hitq.r_rdy), self.hit.payload.eq(hitq.r_data), hitq.r_en.eq(self.hit.ready)]
        m.d.comb += [self.fill_req.valid.eq(fillq.r_rdy), self.fill_req.payload.eq(fillq.r_data),
                     fillq.r_en.eq(self.fill_req.ready)]

        # ---- fill: write the line, answer the waiters ----------------------------------------------------------
        ans_busy = Signal()
        ans_id = Signal(range(M))
        ans_k = Signal(range(MERGE_DEPTH + 1))
        ans_data = Signal(LINE_BITS)
        ans_cnt = Signal(range(MERGE_DEPTH + 1))
        ans_who = Signal(who_l)
        with m.Switch(ans_id):
            for j in range(M):
                with m.Case(j):
                    m.d.comb += ans_cnt.eq(m_cnt[j])
                    with m.Switch(ans_k):
                        for k in range(MERGE_DEPTH):
                            with m.Case(k):
                                m.d.comb += ans_who.eq(m_who[j][k])
        m.d.comb += [self.ans.valid.eq(ans_busy), self.ans.payload.who.eq(ans_who),
                     self.ans.payload.data.eq(ans_data)]
        last = Signal()
        m.d.comb += last.eq(self.ans.valid & self.ans.ready & (ans_k + 1 == ans_cnt))
        with m.If(self.ans.valid & self.ans.ready):
            m.d.sync += ans_k.eq(ans_k + 1)
            with m.If(last):
                m.d.sync += ans_busy.eq(0)
                for j in range(M):
                    with m.If(ans_id == j):
                        m.d.sync += state[j].eq(FREE)
        m.d.comb += self.fill.ready.eq(~ans_busy | last)
        f_way = Signal(max(1, wb))
        f_la = Signal(LA_BITS)
        with m.Switch(self.fill.payload.id):
            for j in range(M):
                with m.Case(j):
                    m.d.comb += [f_way.eq(m_way[j]), f_la.eq(m_la[j])]
        with m.If(self.fill.valid & self.fill.ready):
            m.d.comb += [d_wr.en.eq(1), d_wr.addr.eq(line_addr(f_way, local_set(f_la))),
                         d_wr.data.eq(self.fill.payload.data)]
            m.d.sync += [ans_busy.eq(1), ans_id.eq(self.fill.payload.id), ans_k.eq(0),
                         ans_data.eq(self.fill.payload.data)]
            for j in range(M):
                with m.If(self.fill.payload.id == j):
                    m.d.sync += state[j].eq(FILLED)
        return m
