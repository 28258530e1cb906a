"""`PackedLaneBuffer`: masked word-wide writes and element reads agree with a plain per-element model."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwforge.errors import ConfigError
from hwforge.rtl.lib.lanebuf import PackedLaneBuffer


@pytest.mark.parametrize("pack, width, seed", [(2, 16, 0), (4, 8, 1), (16, 8, 2)])
def test_masked_word_writes_then_element_reads(pack: int, width: int, seed: int) -> None:
    lanes, depth = 3, 37  # depth not a multiple of pack: the last word is partly used
    dut = PackedLaneBuffer(lanes, depth, width, pack)
    rng = np.random.default_rng(seed)
    model = np.zeros((lanes, dut.depth), dtype=np.int64)
    lo, hi = -(1 << (width - 1)), (1 << (width - 1))
    writes = [(int(rng.integers(lanes)), int(rng.integers(dut.words)), int(rng.integers(1, 1 << pack)),
               [int(v) for v in rng.integers(lo, hi, pack)]) for _ in range(60)]
    reads: list[tuple[int, int, int]] = []

    async def bench(ctx) -> None:
        for lane, word, mask, vals in writes:
            ctx.set(dut.w_en[lane], mask)
            ctx.set(dut.w_addr[lane], word)
            ctx.set(dut.w_data[lane], sum((v & ((1 << width) - 1)) << (width * i) for i, v in enumerate(vals)))
            await ctx.tick()
            ctx.set(dut.w_en[lane], 0)
            for i in range(pack):
                if mask >> i & 1 and word * pack + i < dut.depth:
                    model[lane, word * pack + i] = vals[i]
        for addr in range(dut.depth):
            for lane in range(lanes):
                ctx.set(dut.r_addr[lane], addr)
            await ctx.tick()
            for lane in range(lanes):
                reads.append((lane, addr, ctx.get(dut.r_data[lane])))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    for lane, addr, got in reads:
        assert got == model[lane, addr], (lane, addr)


def test_bad_pack_is_refused() -> None:
    with pytest.raises(ConfigError, match="pack"):
        PackedLaneBuffer(2, 8, 8, 3)
