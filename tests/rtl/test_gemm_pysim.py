"""Fast checks in Amaranth's Python simulator: the array, the requantiser, and whole programs at widths and
bus sizes the Verilator tests do not build."""

from __future__ import annotations

import numpy as np
import pytest
from gemm_cases import conv_net, mlp

from hwforge.ir.quant import requantize, wrap
from hwforge.rtl.gemm import COUNTERS, GemmAccelerator, GemmConfig, GemmLayer, build_program, reference
from hwforge.rtl.gemm.array import SystolicArray
from hwforge.rtl.gemm.cycles import rtl_compute_cycles
from hwforge.rtl.lib.pe import PRODUCT_LATENCY
from hwforge.rtl.lib.requant import Requantizer
from hwforge.rtl.tb.pysim import run_pysim


def _sim(dut, bench):
    from amaranth.sim import Simulator

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_array_computes_tile(dataflow):
    """Drive a 3x2 array directly with the skewed schedule the controller uses; compare with numpy.

    Each cell registers its product, so results appear `PRODUCT_LATENCY` cycles after the combinational
    schedule (OS: the drain starts later; WS: column results leave later)."""
    R, C, T = 3, 2, 4
    rng = np.random.default_rng(1)
    arr = SystolicArray(R, C, 8, 24, dataflow)
    got = np.zeros((R, C) if dataflow == "os" else (T, C), np.int64)
    if dataflow == "os":
        a, b = rng.integers(-128, 128, (R, T)), rng.integers(-128, 128, (C, T))
    else:
        a, b = rng.integers(-128, 128, (T, R)), rng.integers(-128, 128, (C, R))   # A: T x K, W: C x K

    async def bench(ctx):
        ctx.set(arr.clear, 1)
        await ctx.tick()
        ctx.set(arr.clear, 0)
        PL = PRODUCT_LATENCY
        length = 2 * R + C + T - 2 + PL
        for tau in range(length):
            if dataflow == "os":
                for r in range(R):
                    ctx.set(arr.a_in[r], int(a[r, tau - r]) if 0 <= tau - r < T else 0)
                for c in range(C):
                    ctx.set(arr.b_in[c], int(b[c, tau - c]) if 0 <= tau - c < T else 0)
                drain_at = T + R + C - 2 + PL
                ctx.set(arr.shift, tau >= drain_at)
                if tau >= drain_at:
                    for c in range(C):
                        got[R - 1 - (tau - drain_at), c] = ctx.get(arr.out[c])
            else:
                ctx.set(arr.shift, tau < R)
                for c in range(C):
                    ctx.set(arr.b_in[c], int(b[c, R - 1 - tau]) if tau < R else 0)
                tp = tau - R
                for r in range(R):
                    ctx.set(arr.a_in[r], int(a[tp - r, r]) if tau >= R and 0 <= tp - r < T else 0)
                for c in range(C):
                    m = tp - (R - 1) - c - PL
                    if tau >= R and 0 <= m < T:
                        got[m, c] = ctx.get(arr.out[c])
            await ctx.tick()

    _sim(arr, bench)
    want = a @ b.T
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("acc_width, out_bits, mult, shift, relu", [
    (24, 8, 40000, 20, False), (48, 16, 65535, 47, True), (9, 4, 3, 0, False), (32, 8, 1, 1, True)])
@pytest.mark.parametrize("pipelined", [False, True])
def test_requantizer_matches_quant(acc_width, out_bits, mult, shift, relu, pipelined):
    """Random accumulators and int32 biases (the sum wraps at acc_width) against `quant.requantize`."""
    rng = np.random.default_rng(acc_width + shift)
    n = 60
    lo = -(1 << (acc_width - 1))
    accs = np.concatenate([rng.integers(lo, -lo, n - 2), [lo, -lo - 1]])
    biases = rng.integers(-(1 << 31), 1 << 31, n)
    rq = Requantizer(acc_width, out_bits, tag_width=8, pipelined=pipelined)
    got = []

    async def bench(ctx):
        ctx.set(rq.multiplier, mult)
        ctx.set(rq.shift, shift)
        ctx.set(rq.relu, relu)
        for i in range(n + rq.latency):
            ctx.set(rq.i_valid, i < n)
            if i < n:
                ctx.set(rq.i_acc, int(accs[i]))
                ctx.set(rq.i_bias, int(biases[i]))
                ctx.set(rq.i_tag, i)
            await ctx.tick()
            if ctx.get(rq.o_valid):
                got.append((ctx.get(rq.o_tag), ctx.get(rq.o_data)))

    _sim(rq, bench)
    assert [t for t, _ in got] == list(range(n))    # in order, none later than ``rq.latency`` cycles
    want = requantize(wrap(accs + biases, acc_width), mult, shift, relu, out_bits)
    np.testing.assert_array_equal([v for _, v in got], want)


PYSIM_CFGS = [
    GemmConfig(rows=2, cols=3, width=4, acc_width=12, dataflow="os", op_depth=64, out_depth=64),
    GemmConfig(rows=3, cols=2, width=4, acc_width=20, dataflow="ws", op_depth=8, out_depth=64),
    GemmConfig(rows=2, cols=2, width=16, acc_width=40, dataflow="os", op_depth=64, out_depth=64, bus_width=64),
    GemmConfig(rows=2, cols=2, width=16, acc_width=48, dataflow="ws", op_depth=4, out_depth=32, bus_width=128),
    GemmConfig(rows=1, cols=1, width=8, acc_width=17, dataflow="os", op_depth=64, out_depth=64),
]


def _random_net(cfg: GemmConfig, seed: int) -> tuple[list[GemmLayer], np.ndarray]:
    rng = np.random.default_rng(seed)
    hi = 1 << (cfg.width - 1)
    m, k, n = 5, 6, 5
    x = rng.integers(-hi, hi, m * k)
    shift = 2 * cfg.width - 3
    l1 = GemmLayer(rng.integers(-hi, hi, (n, k)), rng.integers(-(hi * hi), hi * hi, n), multiplier=40000,
                   shift=shift + 16 - 4, relu=True)
    l2 = GemmLayer(rng.integers(-hi, hi, (3, 4)), rng.integers(-hi, hi, 3), multiplier=50000, shift=shift + 13,
                   a_gather=rng.integers(-1, m * n, (4, 4)))
    return [l1, l2], x


@pytest.mark.parametrize("cfg", PYSIM_CFGS, ids=lambda c: f"{c.dataflow}{c.rows}x{c.cols}w{c.width}b{c.bus_width}")
def test_accelerator_pysim_bit_exact(cfg):
    layers, x = _random_net(cfg, cfg.width + cfg.rows)
    prog = build_program(cfg, layers, x)
    mem, res = run_pysim(GemmAccelerator(cfg), prog.words, latency=3, counters=COUNTERS)
    for got, want in zip(prog.read_outputs(mem), reference(cfg, layers, x), strict=True):
        np.testing.assert_array_equal(got, want)
    pairs = [rtl_compute_cycles(cfg, p.m, p.k, p.n, p.m_tile) for p in prog.plans]
    assert res["folds"] == sum(f for f, _ in pairs)
    assert res["compute_cycles"] == sum(c for _, c in pairs)
    assert res["bytes_written"] == sum(p.m * p.dst_words for p in prog.plans) * cfg.bus_width // 8


def test_accumulator_wraps_like_reference():
    """acc_width=17 overflows on 8 x 127*127; hardware and golden model must wrap identically."""
    cfg = PYSIM_CFGS[-1]
    layer = GemmLayer(np.full((2, 8), 127), np.array([0, 5]), multiplier=1, shift=0)
    x = np.full(8, 127)
    prog = build_program(cfg, [layer], x)
    mem, _ = run_pysim(GemmAccelerator(cfg), prog.words)
    np.testing.assert_array_equal(prog.read_outputs(mem)[0], reference(cfg, [layer], x)[0])


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_conv_net_pysim(dataflow):
    cfg = GemmConfig(rows=2, cols=2, dataflow=dataflow, op_depth=64, out_depth=64)
    layers, x = conv_net(4)
    prog = build_program(cfg, layers, x)
    mem, _ = run_pysim(GemmAccelerator(cfg), prog.words, latency=1)
    for got, want in zip(prog.read_outputs(mem), reference(cfg, layers, x), strict=True):
        np.testing.assert_array_equal(got, want)


def test_mlp_pysim_fault_detected():
    cfg = GemmConfig(rows=2, cols=2, dataflow="os", op_depth=64, out_depth=64)
    layers, x = mlp(9)
    prog = build_program(cfg, layers, x)
    mem, _ = run_pysim(GemmAccelerator(cfg, fault="drop_last_fold"), prog.words)
    assert any(not np.array_equal(g, w) for g, w in zip(prog.read_outputs(mem), reference(cfg, layers, x), strict=True))
