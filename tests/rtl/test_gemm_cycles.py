"""The gemm cycle model and traffic schedule on the host: properties that hold for any shape and configuration.

Its accuracy against the RTL is checked on Verilator in ``test_gemm_verilator.py`` and measured across the
benchmark's configurations by ``benchmarks/gemm.py``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hwforge.ir.quant import quantize_multiplier
from hwforge.rtl.gemm import (
    GemmConfig,
    GemmLayer,
    build_program,
    conv2d_gather,
    minimum_bytes,
    predict_layer_cycles,
    roofline_cycles,
    rtl_compute_cycles,
)
from hwforge.rtl.gemm.traffic import layer_schedule, layer_traffic, program_traffic


def _program(cfg: GemmConfig, m: int, k: int, n: int, seed: int, gather: bool = False):
    rng = np.random.default_rng(seed)
    mult, shift = quantize_multiplier(1.0 / (40 * k))
    table = None
    sources = m * k
    if gather:
        table = conv2d_gather(1, 2, 5, 5, 3, 3, padding=(1, 1))   # M=25, K=18, with -1 padding
        m, k, sources = table.shape[0], table.shape[1], 50
    layer = GemmLayer(rng.integers(-128, 128, (n, k)), rng.integers(-999, 999, n), multiplier=mult, shift=shift,
                      a_gather=table)
    return build_program(cfg, [layer], rng.integers(-128, 128, sources)), m, k, n


configs = st.builds(
    GemmConfig, rows=st.sampled_from([2, 3, 4, 8]), cols=st.sampled_from([2, 4, 5, 8]),
    dataflow=st.sampled_from(["os", "ws"]), bus_width=st.sampled_from([32, 64, 128, 256, 512]),
    reads_in_flight=st.sampled_from([1, 4, 8, 32]), op_depth=st.sampled_from([64, 256, 1024]))


@settings(max_examples=60, deadline=None)
@given(cfg=configs, m=st.integers(1, 70), k=st.integers(1, 70), n=st.integers(1, 40), seed=st.integers(0, 9),
       gather=st.booleans(), latency=st.sampled_from([1, 3, 20]), stall=st.sampled_from([0.0, 0.2, 0.5]))
def test_schedule_and_prediction_are_consistent(cfg, m, k, n, seed, gather, latency, stall):
    assume(cfg.dataflow == "ws" or k <= cfg.op_depth)       # OS keeps a whole row of A per lane
    prog, m, k, n = _program(cfg, m, k, n, seed, gather)
    plan = prog.plans[0]
    sched = layer_schedule(prog, 0)
    folds, _ = rtl_compute_cycles(cfg, m, k, n, plan.m_tile)
    # the replayed loop nest runs the array's folds and finishes every output exactly once
    assert len(sched.folds) == folds
    assert sum(f.outputs for f in sched.folds) == m * n
    assert all(sched.loads[f.a_load].buf == "a" and sched.loads[f.b_load].buf in ("b", "bias")
               for f in sched.folds)
    # nothing moves less than the compulsory bytes (gathers may skip padding but read each source word)
    moved = sum(program_traffic(prog).values())
    if not gather:
        assert moved >= minimum_bytes(cfg, m, k, n) - cfg.bus_width // 8
    assert sum(layer_traffic(prog, 0).values()) * cfg.bus_width // 8 + cfg.bus_width // 8 == moved
    # the prediction respects the roofline and grows with a slower memory
    pred = predict_layer_cycles(prog, 0, latency, stall)
    assert pred >= roofline_cycles(cfg, m, k, n, plan.m_tile, None if not gather else 1)
    assert predict_layer_cycles(prog, 0, latency + 17, stall) >= pred
    assert predict_layer_cycles(prog, 0, latency, min(0.9, stall + 0.3)) >= pred


def test_prediction_is_compute_bound_with_a_wide_bus():
    """A large GEMM on an 8x8 OS array with a 128-bit bus: loads hide behind streaming (model within 5 %)."""
    cfg = GemmConfig(rows=8, cols=8, dataflow="os", bus_width=128)
    prog, m, k, n = _program(cfg, 128, 128, 128, 0)
    _, compute = rtl_compute_cycles(cfg, m, k, n)
    assert compute <= predict_layer_cycles(prog, 0, 3, 0.0) <= 1.05 * compute
