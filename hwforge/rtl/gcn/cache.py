"""The shared, banked, non-blocking feature cache of the snf accelerator.

- 64-byte lines, ``cfg.cache_kb`` KiB, ``cfg.ways`` ways, true LRU (an age per way and set; the accessed way
  gets age 0, younger ways age by one; the victim is the lowest invalid way, else the way of age ways-1).
- A request names a feature line as (vertex, line-in-row); the cache computes the line number
  ``vertex * row_lines + line`` (relative to the feature base ``x_base``, which is line aligned), so a slice of
  a row is a run of whole lines and lines of different slices never alias.
- The set index is the XOR-fold of the line number (``la[0:sb] ^ la[sb:2sb] ^ ...``, `set_index`) and the
  tag is ``la >> sb``: with plain modulo indexing a one-line slice of rows of ``row_lines`` lines would touch
  only ``sets / gcd(sets, row_lines)`` sets, so narrow slices could never use the whole cache.
- ``cfg.cache_banks`` banks (`hwforge.rtl.gcn.cache_bank.CacheBank`): bank = low bits of the set index, so
  consecutive lines of a row and lines of different rows spread over the banks. Each bank looks up one request
  per cycle (hit: two cycles to data), keeps ``cfg.mshrs`` misses in flight, merges requests to a line in
  flight into its MSHR and answers hits while its misses are outstanding.
- The fill engine (`hwforge.rtl.gcn.cache_fill.LineFiller`) reads missed lines as ``words_per_line``
  back-to-back bus reads, several lines in flight, on the one memory port (class ``features``).
- Ordering: each engine may have `LINES_IN_FLIGHT` requests in the cache. A request gets the engine's next
  sequence number (its slot in the engine's reorder buffer); banks answer out of order (a hit overtakes an
  earlier miss of the same engine), each answer is written into its slot, and the engine's ``resp`` stream
  presents the slots strictly in sequence order, so `FeatureReadSignature`'s contract (responses in request
  order) holds. Slots are reserved at request time, so answers never wait for the engine.
- Crossbars: per bank, a round-robin choice among the engines whose next request maps to it; per engine, a
  round-robin choice among the banks' hit and fill-answer streams addressed to it (one answer per engine and
  cycle, at most one per source).
- ``flush`` (pulse) invalidates every set (each bank one set per cycle; ``busy`` is high meanwhile) and zeroes
  the ``hits`` / ``misses`` counters. A lookup that finds its tag counts as a hit (also when it merges into a
  fill in flight), one that does not as a miss, so ``misses`` is the number of line fills and, with a single
  requester, both equal the sequential LRU model `hwforge.rtl.gcn.cache_model`.

Faults (see `CacheBank`): ``stale_cache_line`` ignores the valid bit on lookup, so a line that was invalidated
(or never filled) but whose stale tag matches is answered with the old data in the data memory;
``hit_before_fill`` answers a lookup of a line still being fetched from the data array before the fill.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hwforge.rtl.gcn.cache_bank import (
    LA_BITS,
    CacheBank,
    bank_of,
    bank_response_layout,
    fold,
    set_index,
)
from hwforge.rtl.gcn.cache_fill import LineFiller, round_robin
from hwforge.rtl.gcn.config import LINE_BITS, LINES_IN_FLIGHT, SnfConfig
from hwforge.rtl.lib.memport import MemPortSignature

__all__ = ["LA_BITS", "FeatureCache", "FeatureReadSignature", "bank_of", "feature_request_layout", "set_index"]

feature_request_layout = data.StructLayout({"vertex": unsigned(32), "line": unsigned(16)})


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
        n, B, K = self.n_ports, cfg.cache_banks, LINES_IN_FLIGHT
        sb = exact_log2(cfg.sets)
        bb = exact_log2(B)

        banks = []
        for b in range(B):
            bank = CacheBank(cfg, n, self.fault)
            m.submodules[f"bank{b}"] = bank
            banks.append(bank)
            m.d.comb += bank.flush.eq(self.flush)
        self._banks = banks  # for test benches that look inside
        m.submodules.filler = filler = LineFiller(cfg)
        wiring.connect(m, filler.mem, wiring.flipped(self.mem))
        m.d.comb += filler.x_base.eq(self.x_base)
        for b, bank in enumerate(banks):
            wiring.connect(m, bank.fill_req, filler.req[b])
            wiring.connect(m, filler.fill[b], bank.fill)

        # ---- counters ------------------------------------------------------------------------------------------
        busy = 0
        hit_sum, miss_sum = 0, 0
        for bank in banks:
            busy = busy | bank.busy
            hit_sum = hit_sum + bank.hit_pulse
            miss_sum = miss_sum + bank.miss_pulse
        m.d.comb += self.busy.eq(busy)
        with m.If(self.flush):
            m.d.sync += [self.hits.eq(0), self.misses.eq(0)]
        with m.Else():
            m.d.sync += [self.hits.eq(self.hits + hit_sum), self.misses.eq(self.misses + miss_sum)]

        # ---- per-engine front: line number, bank, sequence number ----------------------------------------------
        la, tgt, tail, head, count = [], [], [], [], []
        for e in range(n):
            p = self.port[e].req.payload
            s_la = Signal(LA_BITS, name=f"la{e}")
            m.d.comb += s_la.eq(p.vertex * self.row_lines + p.line)
            s_bank = Signal(range(max(2, B)), name=f"bank_of{e}")
            if bb:
                m.d.comb += s_bank.eq(fold(s_la, sb)[:bb])
            la.append(s_la)
            tgt.append(s_bank)
            tail.append(Signal(range(K), name=f"tail{e}"))
            head.append(Signal(range(K), name=f"head{e}"))
            count.append(Signal(range(K + 1), name=f"count{e}"))

        # ---- request crossbar: engines -> banks ----------------------------------------------------------------
        issued = [Signal(name=f"issued{e}") for e in range(n)]
        for b, bank in enumerate(banks):
            wants = [self.port[e].req.valid & (tgt[e] == b) & (count[e] < K) for e in range(n)]
            fire = Signal(name=f"bank{b}_fire")
            chosen, anyv = round_robin(m, wants, fire, f"bank{b}_rr")
            m.d.comb += [bank.req.valid.eq(anyv), fire.eq(bank.req.valid & bank.req.ready)]
            with m.Switch(chosen):
                for e in range(n):
                    with m.Case(e):
                        m.d.comb += [bank.req.payload.who.eng.eq(e), bank.req.payload.who.seq.eq(tail[e]),
                                     bank.req.payload.la.eq(la[e])]
            for e in range(n):
                with m.If(fire & (chosen == e)):
                    m.d.comb += issued[e].eq(1)
        for e in range(n):
            m.d.comb += self.port[e].req.ready.eq(issued[e])

        # ---- response crossbar: bank hits and fill answers -> per-engine reorder buffers -------------------------
        sources = [s for bank in banks for s in (bank.hit, bank.ans)]
        rl = bank_response_layout(n)
        sel_of = []
        for e in range(n):
            takes = Signal(name=f"rob{e}_takes")
            wants = [s.valid & (s.payload.who.eng == e) for s in sources]
            chosen, anyv = round_robin(m, wants, takes, f"rob{e}_rr")
            m.d.comb += takes.eq(anyv)
            sel_of.append((chosen, anyv))
            w = Signal(rl, name=f"rob{e}_in")
            with m.Switch(chosen):
                for i, s in enumerate(sources):
                    with m.Case(i):
                        m.d.comb += w.eq(s.payload)
            rob = Memory(shape=unsigned(LINE_BITS), depth=K, init=[])
            m.submodules[f"rob{e}"] = rob
            wp = rob.write_port()
            rp = rob.read_port(transparent_for=(wp,))
            ready_bits = Signal(K, name=f"rob{e}_ready")
            m.d.comb += [wp.en.eq(anyv), wp.addr.eq(w.who.seq), wp.data.eq(w.data)]
            resp = self.port[e].resp
            pop = Signal(name=f"rob{e}_pop")
            m.d.comb += [resp.valid.eq(ready_bits.bit_select(head[e], 1)), resp.payload.eq(rp.data),
                         pop.eq(resp.valid & resp.ready),
                         rp.addr.eq(Mux(pop, (head[e] + 1)[:len(head[e])] if K > 1 else 0, head[e]))]
            set_mask = Mux(anyv, 1 << w.who.seq, 0)
            clr_mask = Mux(pop, 1 << head[e], 0)
            m.d.sync += ready_bits.eq((ready_bits | set_mask) & ~clr_mask)
            with m.If(pop):
                m.d.sync += head[e].eq(Mux(head[e] == K - 1, 0, head[e] + 1))
            with m.If(issued[e]):
                m.d.sync += tail[e].eq(Mux(tail[e] == K - 1, 0, tail[e] + 1))
            m.d.sync += count[e].eq(count[e] + issued[e] - pop)
        for i, s in enumerate(sources):
            rdy = 0
            for e in range(n):
                chosen, anyv = sel_of[e]
                rdy = rdy | ((s.payload.who.eng == e) & anyv & (chosen == i))
            m.d.comb += s.ready.eq(rdy)
        return m
