"""OnChipMemorySoC in Amaranth's simulator: the memory-port protocol with and without backpressure."""

import random

import numpy as np
import pytest
from amaranth.hdl import Fragment, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator
from standin_accel import StandInAccelerator

from hwforge.errors import ConfigError
from hwforge.fpga.soc import OnChipMemorySoC, checksum_of
from hwforge.rtl.lib import MemPortSignature

N, SRC, DST = 6, 2, 20


def _run(soc: OnChipMemorySoC, stall_seed: int | None, max_cycles: int = 2000) -> dict:
    """Simulate until done; with a seed, set the stand-in's stall inputs at random every cycle."""
    acc = soc.accelerator
    stats = {"cycles": 0, "starts": 0, "req_blocked": 0, "resp_held": 0}
    rng = random.Random(stall_seed)

    async def bench(ctx):
        for _ in range(max_cycles):
            if stall_seed is not None:
                # Hold responses back more often than requests, so the SoC's response FIFO fills up.
                ctx.set(acc.stall, int(rng.random() < 0.3) | int(rng.random() < 0.75) << 1)
            stats["starts"] += ctx.get(acc.start)
            stats["req_blocked"] += ctx.get(acc.mem.req.valid) and not ctx.get(acc.mem.req.ready)
            stats["resp_held"] += ctx.get(acc.mem.resp.valid) and not ctx.get(acc.mem.resp.ready)
            if ctx.get(soc.done):
                break
            await ctx.tick()
            stats["cycles"] += 1
        else:
            raise AssertionError(f"no done after {max_cycles} cycles")
        stats["memory"] = [ctx.get(soc.memory.data[i]) for i in range(soc.depth)]
        for name in ("checksum", "writes", "leds"):
            stats[name] = ctx.get(getattr(soc, name))
        stats["readback"] = ctx.get(acc.readback)

    sim = Simulator(soc)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return stats


def _soc(image, dw: int = 32) -> OnChipMemorySoC:
    return OnChipMemorySoC(lambda: StandInAccelerator(N, SRC, DST, dw), image, dw, depth=32)


def _check(stats: dict, image: list[int], dw: int) -> None:
    mask = (1 << dw) - 1
    written = [(image[SRC + i] + 1) & mask for i in range(N)]
    expect = list(image) + [0] * (32 - len(image))
    expect[DST:DST + N] = written
    assert stats["memory"] == expect
    assert stats["writes"] == N
    assert stats["checksum"] == checksum_of(written, dw)
    readback = 0
    for w in written:
        readback ^= w
    assert stats["readback"] == readback
    assert stats["leds"] & 1 == 1
    assert stats["starts"] == 1


@pytest.mark.parametrize("dw", [32, 64])
def test_soc_runs_standin_without_stalls(dw: int) -> None:
    image = [(0x1234_5678 * (i + 1)) & ((1 << dw) - 1) for i in range(16)]
    image[SRC + 1] = (1 << dw) - 1  # +1 wraps to zero
    stats = _run(_soc(image, dw), stall_seed=None)
    _check(stats, image, dw)
    # Reads are pipelined: 3N requests and the final response take well under 4N cycles.
    assert stats["cycles"] < 4 * N + 8


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_soc_honours_backpressure(seed: int) -> None:
    image = list(range(100, 116))
    stats = _run(_soc(image), stall_seed=seed)
    _check(stats, image, 32)
    assert stats["resp_held"] > 0, "the random stalls never held a response back"
    assert stats["req_blocked"] > 0, "the SoC never pushed back on a request"


def test_soc_leds_fold_the_checksum() -> None:
    image = list(range(16))
    stats = _run(_soc(image), stall_seed=None)
    chk, folded = stats["checksum"], 0
    for lo in range(0, 32, 7):
        folded ^= (chk >> lo) & 0x7F
    assert stats["leds"] >> 1 == folded


def test_soc_accepts_numpy_image_and_rounds_depth() -> None:
    soc = OnChipMemorySoC(lambda: StandInAccelerator(2, 0, 3, 32), np.array([-1, 5, 7], dtype=np.int32), 32)
    assert soc.image == [0xFFFF_FFFF, 5, 7]
    assert soc.depth == 4
    Fragment.get(soc, None)  # elaborates (and marks the design used)


class _NoMem(wiring.Component):
    start: In(1)
    done: Out(1)

    def elaborate(self, platform: object) -> Module:
        return Module()


class _Narrow(wiring.Component):
    start: In(1)
    done: Out(1)
    mem: Out(MemPortSignature(32, 16))

    def elaborate(self, platform: object) -> Module:
        return Module()


def test_soc_rejects_bad_accelerators_and_images() -> None:
    with pytest.raises(ConfigError, match="mem"):
        OnChipMemorySoC(_NoMem, [0], 32)
    with pytest.raises(ConfigError, match="16 bits wide"):
        OnChipMemorySoC(_Narrow, [0], 32)
    with pytest.raises(ConfigError, match="wiring.Component"):
        OnChipMemorySoC(lambda: Signal(), [0], 32)
    with pytest.raises(ConfigError, match="does not fit"):
        OnChipMemorySoC(lambda: StandInAccelerator(1, 0, 1, 16), [1 << 16], 16)
    with pytest.raises(ConfigError, match="smaller than the image"):
        OnChipMemorySoC(lambda: StandInAccelerator(1, 0, 1, 32), [0] * 8, 32, depth=4)
