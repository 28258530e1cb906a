"""The snf accelerator on Verilator (cocotb): bit-exact against the golden model, counters against the traffic
and cache models, tuner trajectory, and deliberately broken variants caught.

One 2-engine model serves every policy and engine count (policies and active engines are program fields);
the fault variants are built on a small 1-engine configuration, and one small 1-engine build checks the 512-bit
bus. Builds are cached by Verilog hash.
"""

from __future__ import annotations

import numpy as np
import pytest
from snf_cases import features, karate, powerlaw, psum_case

from hwforge.rtl.gcn import (
    SnfConfig,
    build_program,
    cache_model,
    emit_verilog,
    expected_traffic,
    planned_rounds,
    reference,
    simulate,
)

pytestmark = [pytest.mark.slow]

HW = SnfConfig(engines=2, cache_kb=8, ways=4, cache_banks=2, mshrs=2, max_row_lines=8)
FAULT_HW = SnfConfig(engines=1, cache_kb=1, ways=2, max_row_lines=2, max_chunk=4, max_tiles=2, tiles=2,
                     candidates=(1, 2))


def _run(cfg, csr, f, seed, stall, tmp_path, verilog=None, relu=True):
    x, b = features(csr.n, f, seed=seed)
    prog = build_program(cfg, csr, x, b, relu=relu)
    res = simulate(cfg, prog, seed=seed, stall_prob=stall, latency=3, work_dir=tmp_path, verilog=verilog)
    return prog, res, reference(cfg, csr, x, b, relu=relu)


def _check_counters(cfg, prog, res):
    c = res.counters
    rounds = [(r["tile"], r["start"], r["width"]) for r in res.log]
    assert len(rounds) == c["rounds"]
    for t in range(len(prog.tiles)):   # every tile's rounds cover the whole row exactly once
        assert sum(w for tt, _, w in rounds if tt == t) == prog.row_lines
    if cfg.policy != "dynamic":
        assert rounds == planned_rounds(prog)
    want = expected_traffic(prog, rounds)
    assert c["cache_hits"] + c["cache_misses"] == c["line_accesses"] == want["line_accesses"]
    assert c["bytes_features"] == 64 * c["cache_misses"]
    for k in ("bytes_topology", "bytes_outputs", "bytes_psum", "bytes_weights", "bytes_control"):
        assert c[k] == want[k], k
    assert c["bytes_read"] + c["bytes_written"] == sum(v for k, v in c.items()
                                                       if k.startswith("bytes_") and k not in
                                                       ("bytes_read", "bytes_written"))
    if cfg.n_active == 1:    # one engine: the access order is fixed, so the LRU model is exact
        assert (c["cache_hits"], c["cache_misses"]) == cache_model(prog, rounds)
    assert sum(r["cycles"] for r in res.log) < c["cycles"]


@pytest.mark.parametrize("active, policy, seed, stall", [
    (1, "none", 1, 0.0), (2, "none", 2, 0.3), (1, "static", 3, 0.3), (2, "static", 4, 0.0),
    (1, "dynamic", 5, 0.3), (2, "dynamic", 6, 0.3), (1, "tiling", 7, 0.3), (2, "tiling", 8, 0.0),
])
def test_karate(active, policy, seed, stall, tmp_path):
    cfg = HW.replace(policy=policy, active_engines=active, slice_lines=1, tiles=3, candidates=(1, 2), chunk=3)
    prog, res, ref = _run(cfg, karate(), 128, seed, stall, tmp_path)
    np.testing.assert_array_equal(res.outputs, ref)
    _check_counters(cfg, prog, res)


@pytest.mark.parametrize("active, policy, seed, stall", [
    (1, "dynamic", 11, 0.2), (2, "static", 12, 0.2), (2, "dynamic", 13, 0.0), (2, "tiling", 14, 0.1),
])
def test_powerlaw_500(active, policy, seed, stall, tmp_path):
    cfg = HW.replace(policy=policy, active_engines=active, slice_lines=2, tiles=2, candidates=(1, 2), chunk=8)
    prog, res, ref = _run(cfg, powerlaw(500, 3, seed=0), 128, seed, stall, tmp_path)
    np.testing.assert_array_equal(res.outputs, ref)
    _check_counters(cfg, prog, res)
    if policy == "dynamic":   # the tuner's trajectory: candidates first, then the best cycles-per-line
        log = res.log
        assert [r["width"] for r in log[:2]] == [1, 2]
        best = min(log[:2], key=lambda r: (r["cycles"] / r["width"], r["round"]))
        assert all(r["width"] == min(best["width"], prog.row_lines - r["start"]) for r in log[2:])


@pytest.mark.parametrize("active", [1, 2])
def test_tiling_psum_bound(active, tmp_path):
    """Tiling moves partial sums only for rows with edges in two tiles (1 and 3): 2 x (spill + reload) x 32 int32
    = 512 bytes, skipped rows cost nothing, and the edgeless row 5 still gets its bias-only output."""
    cfg = HW.replace(policy="tiling", tiles=2, active_engines=active, chunk=2)
    prog, res, ref = _run(cfg, psum_case(), 32, 41, 0.2, tmp_path)
    np.testing.assert_array_equal(res.outputs, ref)
    _check_counters(cfg, prog, res)
    assert res.counters["bytes_psum"] == 512


def test_wide_bus_512(tmp_path):
    """A 512-bit bus (one line per bus word, 32 lanes), 2 banks with 4 MSHRs each: bit-exact, exact counters."""
    cfg = SnfConfig(engines=1, cache_kb=2, ways=2, cache_banks=2, mshrs=4, bus_width=512, lanes=32, max_row_lines=2,
                    max_chunk=4, max_tiles=2, tiles=2, policy="dynamic", candidates=(1, 2), chunk=3)
    prog, res, ref = _run(cfg, karate(), 64, 31, 0.2, tmp_path)
    np.testing.assert_array_equal(res.outputs, ref)
    _check_counters(cfg, prog, res)


@pytest.mark.parametrize("fault", ["drop_last_edge", "stale_cache_line", "hit_before_fill"])
def test_fault_is_caught(fault, tmp_path):
    """A verifier that cannot fail is worthless: broken variants must differ from the golden model."""
    cfg = FAULT_HW.replace(policy="static", slice_lines=1, chunk=4)
    prog, res, ref = _run(cfg, karate(), 64, 21, 0.2, tmp_path, verilog=emit_verilog(cfg, fault))
    assert not np.array_equal(res.outputs, ref), f"{fault} went unnoticed"
