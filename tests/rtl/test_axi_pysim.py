"""Cycle-level burst shaping of `MemPortToAxi4` in Amaranth's Python simulator.

Only the address channels are looked at here (``arready``/``awready``/``wready`` held high, no data returned), so
this is not a memory model: the data path is checked against cocotbext-axi in `test_axi_cocotb.py`. What this
pins down exactly is the coalescing rule: back-to-back consecutive reads are accepted one per cycle and become
INCR bursts of ``max_burst`` beats, split at every 4 KiB page, and a gap or a jump in the address closes a burst.
"""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from hwforge.rtl.lib.axi import MemPortToAxi4


def run_reads(dut: MemPortToAxi4, addrs: list[int | None], max_cycles: int = 500) -> tuple[list[tuple], list[int]]:
    """Offer one read per entry (``None`` = an idle cycle); returns AR handshakes as (byte address, beats) and
    the cycles in which requests were accepted."""
    bursts: list[tuple[int, int]] = []
    accepted: list[int] = []

    async def bench(ctx) -> None:
        ctx.set(dut.m_axi_arready, 1)
        i = 0
        for cycle in range(max_cycles):
            addr = addrs[i] if i < len(addrs) else None
            ctx.set(dut.mem.req.valid, addr is not None)
            ctx.set(dut.mem.req.payload.addr, addr or 0)
            ctx.set(dut.mem.req.payload.write, 0)
            if addr is not None and ctx.get(dut.mem.req.ready):
                accepted.append(cycle)
            if ctx.get(dut.m_axi_arvalid):
                bursts.append((ctx.get(dut.m_axi_araddr), ctx.get(dut.m_axi_arlen) + 1))
            if i < len(addrs) and (addr is None or accepted and accepted[-1] == cycle):
                i += 1
            await ctx.tick()
            if i >= len(addrs) and not ctx.get(dut.m_axi_arvalid) and cycle > len(addrs) + 4:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return bursts, accepted


@pytest.mark.parametrize("data_width, max_burst", [(32, 16), (128, 8), (512, 256)])
def test_consecutive_reads_make_full_bursts_split_at_4k(data_width, max_burst):
    dut = MemPortToAxi4(14, data_width, max_burst=max_burst, max_outstanding=256)
    lanes = data_width // 8
    page = 4096 // lanes
    start = page - 5
    n = 5 + 2 * min(max_burst, page) + 3
    bursts, accepted = run_reads(dut, list(range(start, start + n)))
    assert accepted == list(range(n)), "a consecutive stream must be accepted one request per cycle"
    want, a = [], start
    while a < start + n:
        beats = min(max_burst, page - a % page, start + n - a)
        want.append((a * lanes, beats))
        a += beats
    assert bursts == want


def test_gap_or_jump_closes_a_burst():
    dut = MemPortToAxi4(12, 32, max_burst=16, max_outstanding=64)
    bursts, _ = run_reads(dut, [0, 1, 2, None, 3, 4, 10, 11, 11])
    assert bursts == [(0, 3), (12, 2), (40, 2), (44, 1)]
