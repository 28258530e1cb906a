"""The snf feature cache alone in Amaranth's Python simulator: LRU replacement, hit/miss counters, line data."""

from __future__ import annotations

from collections import deque

from amaranth.sim import Simulator

from hwforge.rtl.gcn import SnfConfig
from hwforge.rtl.gcn.cache import FeatureCache, set_index


def _same_set(sets: int, k: int) -> list[int]:
    out = [la for la in range(1, 4096) if set_index(la, sets) == set_index(0, sets)]
    return [0, *out[:k - 1]]


def test_lru_replacement_and_counters():
    cfg = SnfConfig(cache_kb=1, ways=2, bus_width=128, lanes=8)   # 16 lines, 8 sets, 4 words per line
    dut = FeatureCache(cfg, 1)
    a, b, c = _same_set(cfg.sets, 3)
    seq = [a, b, a, c, a, b, c]
    # 2-way LRU: a miss, b miss, a hit, c miss (evicts b), a hit, b miss (evicts c), c miss (evicts a)
    want_hits = [False, False, True, False, True, False, False]
    got_lines = []
    stats = {}

    async def bench(ctx):
        ctx.set(dut.row_lines, 1)
        ctx.set(dut.x_base, 1000)
        ctx.set(dut.flush, 1)
        await ctx.tick()
        ctx.set(dut.flush, 0)
        pending: deque[tuple[int, int]] = deque()
        port = dut.port[0]
        idx = 0
        cycle = 0
        hits_before = []
        while len(got_lines) < len(seq) and cycle < 2000:
            ctx.set(port.req.valid, idx < len(seq) and not ctx.get(dut.busy))
            ctx.set(port.req.payload.vertex, seq[idx] if idx < len(seq) else 0)
            ctx.set(port.req.payload.line, 0)
            ctx.set(port.resp.ready, 1)
            head = bool(pending) and pending[0][0] <= cycle
            ctx.set(dut.mem.resp.valid, head)
            ctx.set(dut.mem.resp.payload, pending[0][1] if head else 0)
            ctx.set(dut.mem.req.ready, 1)
            if ctx.get(port.req.valid) and ctx.get(port.req.ready):
                idx += 1
                hits_before.append(ctx.get(dut.hits))
            if ctx.get(dut.mem.req.valid):
                addr = ctx.get(dut.mem.req.payload.addr)
                pending.append((cycle + 2, addr))
            if head and ctx.get(dut.mem.resp.ready):
                pending.popleft()
            if ctx.get(port.resp.valid):
                got_lines.append(ctx.get(port.resp.payload))
            await ctx.tick()
            cycle += 1
        stats["hits"] = ctx.get(dut.hits)
        stats["misses"] = ctx.get(dut.misses)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(got_lines) == len(seq)
    assert stats == {"hits": sum(want_hits), "misses": len(seq) - sum(want_hits)}
    for la, line in zip(seq, got_lines, strict=True):
        words = [(line >> (128 * k)) & ((1 << 128) - 1) for k in range(4)]
        assert words == [1000 + 4 * la + k for k in range(4)], f"line {la} data"
