"""The snf feature cache alone in Amaranth's Python simulator: LRU replacement, hit/miss counters, line data,
per-port response order with several ports, banks and misses in flight, and the ``hit_before_fill`` fault."""

from __future__ import annotations

import random
from collections import deque

import pytest
from amaranth.sim import Simulator

from hwforge.rtl.gcn import SnfConfig
from hwforge.rtl.gcn.cache import FeatureCache, set_index

X_BASE = 1000


def _same_set(sets: int, k: int) -> list[int]:
    out = [la for la in range(1, 4096) if set_index(la, sets) == set_index(0, sets)]
    return [0, *out[:k - 1]]


def _lru_model(cfg: SnfConfig, seq: list[int]) -> tuple[list[bool], int, int]:
    """Hits of a sequential true-LRU cache (the contract for a single requester)."""
    lru: list[list[int]] = [[] for _ in range(cfg.sets)]
    hits = []
    for la in seq:
        s, tag = set_index(la, cfg.sets), la // cfg.sets
        lst = lru[s]
        hits.append(tag in lst)
        if tag in lst:
            lst.remove(tag)
        elif len(lst) == cfg.ways:
            lst.pop(0)
        lst.append(tag)
    return hits, sum(hits), len(seq) - sum(hits)


def _line(cfg: SnfConfig, la: int) -> int:
    """The line the memory model returns for line ``la``: word k of the line holds its own address."""
    wpl, bw = cfg.words_per_line, cfg.bus_width
    return sum((X_BASE + wpl * la + k) << (bw * k) for k in range(wpl))


def _run(cfg: SnfConfig, streams: list[list[int]], *, fault: str | None = None, latency: int = 2,
         stall: float = 0.0, seed: int = 0, max_cycles: int = 20_000) -> tuple[list[list[int]], dict]:
    """Drive one request stream per port (line numbers, row_lines=1) against a latency-``latency`` in-order
    memory with random back-pressure; return every port's responses in arrival order and the counters."""
    n = len(streams)
    dut = FeatureCache(cfg, n, fault)
    rng = random.Random(seed)
    got: list[list[int]] = [[] for _ in range(n)]
    stats: dict = {}

    async def bench(ctx):
        ctx.set(dut.row_lines, 1)
        ctx.set(dut.x_base, X_BASE)
        ctx.set(dut.flush, 1)
        await ctx.tick()
        ctx.set(dut.flush, 0)
        pending: deque[tuple[int, int]] = deque()
        idx = [0] * n
        cycle = 0
        while sum(map(len, got)) < sum(map(len, streams)) and cycle < max_cycles:
            busy = ctx.get(dut.busy)
            for p in range(n):
                port = dut.port[p]
                on = idx[p] < len(streams[p]) and not busy and rng.random() >= stall
                ctx.set(port.req.valid, on)
                ctx.set(port.req.payload.vertex, streams[p][idx[p]] if idx[p] < len(streams[p]) else 0)
                ctx.set(port.req.payload.line, 0)
                ctx.set(port.resp.ready, rng.random() >= stall)
            head = bool(pending) and pending[0][0] <= cycle and rng.random() >= stall
            ctx.set(dut.mem.resp.valid, head)
            ctx.set(dut.mem.resp.payload, pending[0][1] if head else 0)
            ctx.set(dut.mem.req.ready, rng.random() >= stall)
            for p in range(n):
                port = dut.port[p]
                if ctx.get(port.req.valid) and ctx.get(port.req.ready):
                    idx[p] += 1
                if ctx.get(port.resp.valid) and ctx.get(port.resp.ready):
                    got[p].append(ctx.get(port.resp.payload))
            if ctx.get(dut.mem.req.valid) and ctx.get(dut.mem.req.ready):
                assert not ctx.get(dut.mem.req.payload.write)
                pending.append((cycle + latency, ctx.get(dut.mem.req.payload.addr)))
            if head and ctx.get(dut.mem.resp.ready):
                pending.popleft()
            await ctx.tick()
            cycle += 1
        stats.update(hits=ctx.get(dut.hits), misses=ctx.get(dut.misses), cycles=cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, stats


def test_lru_replacement_and_counters():
    cfg = SnfConfig(cache_kb=1, ways=2, bus_width=128, lanes=8)   # 16 lines, 8 sets, 4 words per line
    a, b, c = _same_set(cfg.sets, 3)
    seq = [a, b, a, c, a, b, c]
    # 2-way LRU: a miss, b miss, a hit, c miss (evicts b), a hit, b miss (evicts c), c miss (evicts a)
    want_hits = [False, False, True, False, True, False, False]
    assert _lru_model(cfg, seq)[0] == want_hits
    got, stats = _run(cfg, [seq])
    assert {k: stats[k] for k in ("hits", "misses")} == {"hits": sum(want_hits), "misses": len(seq) - sum(want_hits)}
    assert got[0] == [_line(cfg, la) for la in seq]
    for la, line in zip(seq, got[0], strict=True):
        words = [(line >> (128 * k)) & ((1 << 128) - 1) for k in range(4)]
        assert words == [1000 + 4 * la + k for k in range(4)], f"line {la} data"


@pytest.mark.parametrize("banks, mshrs, bus, ports, stall, seed", [
    (1, 1, 64, 1, 0.0, 1), (2, 2, 128, 1, 0.3, 2), (4, 4, 512, 1, 0.2, 3),
    (1, 2, 64, 3, 0.2, 4), (2, 4, 256, 3, 0.0, 5), (4, 2, 512, 4, 0.3, 6),
])
def test_banks_and_mshrs_keep_order_and_data(banks, mshrs, bus, ports, stall, seed):
    """Random line streams (with repeats close together, so misses merge and hits pass misses) on several
    ports: every port gets exactly its lines in its request order; with one port the counters equal the
    sequential LRU model."""
    cfg = SnfConfig(cache_kb=2, ways=2, cache_banks=banks, mshrs=mshrs, bus_width=bus, lanes=bus // 16)
    rng = random.Random(seed)
    hot = [rng.randrange(200) for _ in range(24)]
    streams = [[rng.choice(hot) if rng.random() < 0.7 else rng.randrange(200) for _ in range(60)]
               for _ in range(ports)]
    got, stats = _run(cfg, streams, latency=3, stall=stall, seed=seed)
    for p in range(ports):
        assert got[p] == [_line(cfg, la) for la in streams[p]], f"port {p}"
    assert stats["hits"] + stats["misses"] == sum(map(len, streams))
    if ports == 1:
        _, hits, misses = _lru_model(cfg, streams[0])
        assert (stats["hits"], stats["misses"]) == (hits, misses)


def test_misses_overlap():
    """Distinct lines in different sets: with 4 MSHRs the fills overlap, so the stream takes far fewer cycles
    than one blocking fill after another."""
    seq = list(range(32))
    cycles = {}
    for mshrs in (1, 4):
        cfg = SnfConfig(cache_kb=4, ways=2, cache_banks=1, mshrs=mshrs, bus_width=512, lanes=32)
        got, stats = _run(cfg, [seq], latency=8)
        assert got[0] == [_line(cfg, la) for la in seq]
        cycles[mshrs] = stats["cycles"]
    assert cycles[4] * 2.5 < cycles[1], cycles


def test_hit_before_fill_fault_is_caught():
    """The deliberately broken variant answers a request that merges into a fill in flight from the data array
    before the fill: the second request to a line then returns stale data."""
    cfg = SnfConfig(cache_kb=1, ways=2, mshrs=2, bus_width=128, lanes=8)
    seq = [5, 5, 7, 7]
    good, _ = _run(cfg, [seq], latency=4)
    assert good[0] == [_line(cfg, la) for la in seq]
    bad, _ = _run(cfg, [seq], fault="hit_before_fill", latency=4)
    assert len(bad[0]) == len(seq) and bad[0] != good[0]
