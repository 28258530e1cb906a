"""The gemm accelerator on Verilator (cocotb): bit-exact against the integer model under random stalls.

Four Verilator models are built (OS, WS, and one broken variant of each); builds are cached by Verilog hash,
so a second session only simulates. Each simulation is one process running to ``done`` without Python on the
clock.
"""

from __future__ import annotations

import numpy as np
import pytest
from gemm_cases import COMB_CFG, COMB_SHIFT, OS_CFG, WS_CFG, conv_net, fixed_point_layer, mlp

from hwforge.ir.quant import qmatmul_fixed_int
from hwforge.rtl.gemm import (
    build_program,
    fold_cycles_formula,
    predict_program_cycles,
    reference,
    rtl_compute_cycles,
)
from hwforge.rtl.gemm.sim import emit_verilog, simulate
from hwforge.rtl.gemm.traffic import program_traffic

pytestmark = [pytest.mark.slow]

CFGS = {"os": OS_CFG, "ws": WS_CFG}


def _run(cfg, layers, x, build_cache, tmp_path, **kw):
    prog = build_program(cfg, layers, x)
    res = simulate(cfg, prog, cache_dir=build_cache, work_dir=tmp_path, **kw)
    return prog, res, reference(cfg, layers, x)


def _expected_counts(cfg, prog):
    pairs = [rtl_compute_cycles(cfg, p.m, p.k, p.n, p.m_tile) for p in prog.plans]
    return sum(f for f, _ in pairs), sum(c for _, c in pairs)


@pytest.fixture(scope="session", params=["os", "ws"])
def conv_run(request, build_cache, tmp_path_factory):
    """The conv -> flatten -> fc -> fc network, run once per dataflow with stalls."""
    cfg = CFGS[request.param]
    layers, x = conv_net(0)
    prog, res, ref = _run(cfg, layers, x, build_cache, tmp_path_factory.mktemp(f"conv_{request.param}"),
                          seed=7, stall_prob=0.25, latency=3)
    return cfg, prog, res, ref


def test_conv_net_bit_exact(conv_run):
    cfg, prog, res, ref = conv_run
    assert len(res.outputs) == 3
    for i, (got, want) in enumerate(zip(res.outputs, ref, strict=True)):
        np.testing.assert_array_equal(got, want, err_msg=f"{cfg.dataflow} layer {i}")


def test_compute_cycles_match_formula(conv_run):
    """compute_cycles = sum over layers of SCALE-Sim's folds * (2R + C + T - 2), offset 0."""
    cfg, prog, res, _ = conv_run
    folds, cycles = _expected_counts(cfg, prog)
    assert (res.folds, res.compute_cycles) == (folds, cycles)
    assert res.cycles > res.compute_cycles > 0
    assert res.bytes_written == sum(p.m * p.dst_words for p in prog.plans) * cfg.bus_width // 8
    assert res.bytes_read > 0 and 0 < res.stall_cycles <= res.busy_cycles <= res.cycles
    # the traffic model replays the loop nest, gathers included, word for word
    assert res.bytes_read + res.bytes_written == sum(program_traffic(prog).values())


@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("seed, stall, latency", [(1, 0.0, 1), (2, 0.5, 5), (3, 0.3, 20)])
def test_mlp_under_stalls(dataflow, seed, stall, latency, build_cache, tmp_path):
    cfg = CFGS[dataflow]
    layers, x = mlp(seed, m=7, k=5, n=5)
    prog, res, ref = _run(cfg, layers, x, build_cache, tmp_path, seed=seed, stall_prob=stall, latency=latency)
    for got, want in zip(res.outputs, ref, strict=True):
        np.testing.assert_array_equal(got, want)
    folds, cycles = _expected_counts(cfg, prog)
    assert (res.folds, res.compute_cycles) == (folds, cycles)
    if stall == 0.0:
        assert res.stall_cycles < res.busy_cycles
    assert res.bytes_read + res.bytes_written == sum(program_traffic(prog).values())
    # no M chunking here, so the RTL count is SCALE-Sim's formula itself
    assert cfg.dataflow == "os" or all(p.m_tile >= p.m for p in prog.plans)
    assert res.compute_cycles == sum(fold_cycles_formula(cfg, p.m, p.k, p.n)[1] for p in prog.plans)


@pytest.mark.parametrize("seed", range(10, 30))
def test_random_programs_under_stalls(seed, build_cache, tmp_path):
    """Twenty more seeds: random shapes, both dataflows, latencies 1/3/20 and stall rates up to one half."""
    rng = np.random.default_rng(seed)
    cfg = CFGS["os" if seed % 2 else "ws"]
    layers, x = mlp(seed, m=int(rng.integers(1, 24)), k=int(rng.integers(1, 14)), n=int(rng.integers(1, 10)))
    latency, stall = (1, 3, 20)[seed % 3], (0.1, 0.3, 0.5)[seed % 3]
    prog, res, ref = _run(cfg, layers, x, build_cache, tmp_path, seed=seed, stall_prob=stall, latency=latency)
    for got, want in zip(res.outputs, ref, strict=True):
        np.testing.assert_array_equal(got, want)
    assert res.bytes_read + res.bytes_written == sum(program_traffic(prog).values())


@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("latency, stall", [(3, 0.0), (20, 0.0), (3, 0.3)])
def test_cycle_model_predicts_the_rtl(dataflow, latency, stall, build_cache, tmp_path):
    """`predict_layer_cycles` (what compile reports and `hwforge search` use) within 15 % of measured cycles."""
    cfg = CFGS[dataflow]
    layers, x = mlp(4, m=40, k=30, n=20)
    prog, res, _ = _run(cfg, layers, x, build_cache, tmp_path, seed=4, stall_prob=stall, latency=latency)
    predicted = sum(predict_program_cycles(prog, latency, stall))
    assert abs(res.cycles / predicted - 1) <= 0.15, (res.cycles, predicted)


@pytest.mark.parametrize("dataflow, fault", [("os", "flip_acc_bit"), ("ws", "drop_last_fold"),
                                              ("ws", "flip_acc_bit"), ("os", "dma_reorder"),
                                              ("os", "early_swap")])
def test_fault_is_caught(dataflow, fault, build_cache, tmp_path):
    """A verifier that cannot fail is worthless: broken variants must produce different outputs."""
    cfg = CFGS[dataflow]
    layers, x = mlp(3)
    prog = build_program(cfg, layers, x)
    res = simulate(cfg, prog, seed=5, stall_prob=0.2, latency=2, cache_dir=build_cache, work_dir=tmp_path,
                   verilog=emit_verilog(cfg, fault))
    ref = reference(cfg, layers, x)
    assert any(not np.array_equal(g, w) for g, w in zip(res.outputs, ref, strict=True)), f"{fault} went unnoticed"


@pytest.mark.parametrize("seed, relu, stall, m", [(1, False, 0.3, 9), (2, True, 0.0, 180)])
def test_fixed_point_combination_with_traffic_classes(seed, relu, stall, m, build_cache, tmp_path):
    """The snf combination engine's configuration: Q8.8 x Q8.8 into wrapping 32-bit accumulators, bias,
    multiplier 1 and a rounding shift, exactly `quant.qmatmul_fixed_int`; traffic split by class (M=180 makes
    WS split the rows into two chunks)."""
    layers, x = fixed_point_layer(seed, m=m, relu=relu)
    (layer,) = layers
    prog = build_program(COMB_CFG, layers, x)
    assert (prog.plans[0].m_tile < m) == (m == 180)
    res = simulate(COMB_CFG, prog, seed=seed, stall_prob=stall, latency=3, cache_dir=build_cache, work_dir=tmp_path,
                   classes=True)
    want = qmatmul_fixed_int(x, layer.weight, layer.bias, COMB_SHIFT, relu, 32, 16)
    assert np.abs(x @ layer.weight.T).max() >= 1 << 31  # the accumulator really wraps
    np.testing.assert_array_equal(res.outputs[0], want)
    np.testing.assert_array_equal(reference(COMB_CFG, layers, x)[0], want)
    assert res.bytes_by_class == program_traffic(prog)
    assert sum(res.bytes_by_class.values()) == res.bytes_read + res.bytes_written
