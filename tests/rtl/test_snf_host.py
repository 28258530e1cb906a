"""snf accelerator, host side: configuration checks, program layout, golden model and traffic models."""

from __future__ import annotations

import numpy as np
import pytest
from snf_cases import features, karate, powerlaw

from hwforge.errors import ConfigError
from hwforge.ir.quant import requantize, wrap
from hwforge.rtl.gcn import Csr, SnfConfig, build_program, cache_model, expected_traffic, planned_rounds, reference
from hwforge.rtl.gcn.program import D, pack, unpack


@pytest.mark.parametrize("kw, name", [
    ({"engines": 0}, "engines"), ({"engines": 9}, "engines"), ({"cache_kb": 3}, "cache_kb"),
    ({"ways": 3}, "ways"), ({"feat_bits": 12}, "feat_bits"), ({"bus_width": 48}, "bus_width"),
    ({"acc_bits": 40}, "acc_bits"), ({"lanes": 3}, "lanes"), ({"policy": "magic"}, "policy"),
    ({"slice_lines": 99}, "slice_lines"), ({"tiles": 0}, "tiles"), ({"candidates": (0, 2)}, "candidates"),
    ({"chunk": 0}, "chunk"), ({"active_engines": 3, "engines": 2}, "active_engines"),
])
def test_config_errors_name_the_option(kw, name):
    with pytest.raises(ConfigError, match=name):
        SnfConfig(**kw)


def test_from_options():
    cfg = SnfConfig.from_options({"engines": "4", "policy": "Static", "candidates": "1,2", "cache_kb": "0x10"})
    assert (cfg.engines, cfg.policy, cfg.candidates, cfg.cache_kb) == (4, "static", (1, 2), 16)
    with pytest.raises(ConfigError, match="unknown option 'bogus'"):
        SnfConfig.from_options({"bogus": "1"})
    with pytest.raises(ConfigError, match="engines"):
        SnfConfig.from_options({"engines": "two"})
    # program-only fields do not change the hardware
    assert SnfConfig(policy="tiling", tiles=3).hw_key() == SnfConfig(policy="none").hw_key()


def test_graph_sizes():
    k = karate()
    assert (k.n, k.nnz) == (34, 156 + 34)        # 78 undirected edges both ways plus self loops
    p = powerlaw()
    assert p.n == 500 and p.nnz > 3000


def test_reference_matches_edge_loop():
    """The vectorised golden model equals a literal per-edge loop in Python integers."""
    cfg = SnfConfig(acc_bits=20)
    csr = karate()
    x, b = features(csr.n, 40, seed=3)
    x = x * 8  # large values so the 20-bit accumulator wraps
    x = np.clip(x, -32768, 32767)
    got = reference(cfg, csr, x, b, relu=True)
    want = np.zeros_like(got)
    for v in range(csr.n):
        for f in range(x.shape[1]):
            acc = int(b[f])
            for e in range(csr.indptr[v], csr.indptr[v + 1]):
                acc += int(csr.values[e]) * int(x[csr.indices[e], f])
            want[v, f] = requantize(wrap(np.array([acc]), 20), 1, 8, True, 16)[0]
    np.testing.assert_array_equal(got, want)


def test_pack_roundtrip_and_layout():
    cfg = SnfConfig(bus_width=64, lanes=16)
    v = np.arange(-20, 20)
    assert list(unpack(cfg, pack(cfg, v))[:40]) == list(v)
    csr = karate()
    x, b = features(csr.n, 70)
    prog = build_program(cfg, csr, x, b)
    assert prog.row_lines == 3 and prog.words[D.X] % cfg.words_per_line == 0
    xw = prog.words[D.X]
    row = unpack(cfg, prog.words[xw + 5 * 3 * cfg.words_per_line: xw + 6 * 3 * cfg.words_per_line])
    np.testing.assert_array_equal(row[:70], x[5])
    assert not row[70:].any()


def test_tiles_partition_edges():
    csr = powerlaw()
    cfg = SnfConfig(policy="tiling", tiles=3)
    x, b = features(csr.n, 32)
    prog = build_program(cfg, csr, x, b)
    assert len(prog.tiles) == 3 and sum(t.nnz for t in prog.tiles) == csr.nnz
    rounds = planned_rounds(prog)
    assert rounds == [(0, 0, 1), (1, 0, 1), (2, 0, 1)]
    t = expected_traffic(prog, rounds)
    assert t["line_accesses"] == csr.nnz and t["bytes_psum"] > 0


def test_slicing_trades_topology_for_hits():
    """The model behind Slice-and-Forge: narrower slices re-stream topology but hit more in the cache."""
    csr = powerlaw()
    x, b = features(csr.n, 256)
    res = {}
    for w in (1, 8):
        cfg = SnfConfig(policy="static", slice_lines=w, cache_kb=4)
        prog = build_program(cfg, csr, x, b)
        rounds = planned_rounds(prog)
        res[w] = (cache_model(prog, rounds), expected_traffic(prog, rounds))
    (h1, m1), t1 = res[1]
    (h8, m8), t8 = res[8]
    assert h1 + m1 == h8 + m8 == csr.nnz * 8
    assert m1 < m8 and t1["bytes_topology"] == 8 * t8["bytes_topology"]


def test_bad_inputs():
    cfg = SnfConfig()
    csr = karate()
    x, b = features(csr.n, 16)
    with pytest.raises(ConfigError, match="max_row_lines"):
        build_program(SnfConfig(max_row_lines=1), csr, np.zeros((34, 64), np.int64))
    with pytest.raises(ConfigError, match="features"):
        build_program(cfg, csr, x * 1000, b)
    with pytest.raises(ConfigError, match="indptr"):
        Csr([1, 2], [0], [1])
