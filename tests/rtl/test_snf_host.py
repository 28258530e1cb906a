"""snf accelerator, host side: configuration checks, program layout, golden model and traffic models."""

from __future__ import annotations

import numpy as np
import pytest
from snf_cases import features, karate, powerlaw, psum_case

from hwforge.errors import ConfigError
from hwforge.ir.quant import requantize, wrap
from hwforge.rtl.gcn import Csr, SnfConfig, build_program, cache_model, expected_traffic, planned_rounds, reference
from hwforge.rtl.gcn.program import B_LOAD, B_SKIP, B_SPILL, D, pack, tile_flags, unpack


@pytest.mark.parametrize("kw, name", [
    ({"engines": 0}, "engines"), ({"engines": 9}, "engines"), ({"cache_kb": 3}, "cache_kb"),
    ({"ways": 3}, "ways"), ({"feat_bits": 12}, "feat_bits"), ({"bus_width": 48}, "bus_width"),
    ({"acc_bits": 40}, "acc_bits"), ({"lanes": 3}, "lanes"), ({"policy": "magic"}, "policy"),
    ({"slice_lines": 99}, "slice_lines"), ({"tiles": 0}, "tiles"), ({"candidates": (0, 2)}, "candidates"),
    ({"chunk": 0}, "chunk"), ({"active_engines": 3, "engines": 2}, "active_engines"),
    ({"cache_banks": 3}, "cache_banks"), ({"cache_kb": 1, "ways": 8, "cache_banks": 4}, "cache_banks"),
    ({"mshrs": 0}, "mshrs"), ({"mshrs": 17}, "mshrs"), ({"bus_width": 1024}, "bus_width"),
    ({"bus_width": 512, "lanes": 16}, "lanes"),
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


def test_wide_bus_layout():
    """At 256 and 512 bits a bus word holds 16 / 32 features and the edge value sits at half the word."""
    csr = karate()
    x, b = features(csr.n, 64)
    for bus in (256, 512):
        cfg = SnfConfig(bus_width=bus, lanes=32)
        assert (cfg.per_word, cfg.words_per_line, cfg.psum_per_word) == (bus // 16, 512 // bus, bus // 32)
        prog = build_program(cfg, csr, x, b)
        e0 = prog.words[prog.words[D.TOPO + 1]]
        assert e0 & 0xFFFFFFFF == csr.indices[0] and (e0 >> (bus // 2)) == int(csr.values[0]) & 0xFFFF
        xw = prog.words[D.X]
        np.testing.assert_array_equal(unpack(cfg, prog.words[xw + 3 * cfg.words_per_line:
                                                            xw + 4 * cfg.words_per_line])[:32], x[1, 32:])


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


def test_tiling_psum_traffic_is_bounded():
    """Tiling spills and reloads a row's partial sums only between tiles it has edges in (exact bytes pinned)."""
    csr = psum_case()
    x, b = features(csr.n, 32)
    cfg = SnfConfig(policy="tiling", tiles=2, bus_width=64)
    prog = build_program(cfg, csr, x, b)
    flags = tile_flags(prog.tiles).tolist()
    sk, ld, sp = 1 << B_SKIP, 1 << B_LOAD, 1 << B_SPILL
    assert flags == [[0, sp, sk, sp, 0, sk], [sk, ld, 0, ld, sk, 0]]
    t = expected_traffic(prog, planned_rounds(prog))
    # rows 1 and 3: one spill and one reload each of 32 int32 partial sums (one 64-byte line of 16-bit features)
    assert t["bytes_psum"] == 2 * 2 * 32 * 4 == 512
    assert t["bytes_outputs"] == csr.n * 64
    # the bound on a larger graph at 2..8 tiles: one write per tile (but the last) and one read per tile (but the
    # first) of the rows the tile touches, and strictly less than spilling every row
    big = powerlaw()
    xb, bb = features(big.n, 128)
    for tiles in (2, 4, 8):
        cfg = SnfConfig(policy="tiling", tiles=tiles, max_tiles=8, bus_width=128, lanes=32)
        prog = build_program(cfg, big, xb, bb)
        t = expected_traffic(prog, planned_rounds(prog))
        row = prog.row_lines * cfg.elems_per_line * 4
        touched = [int(np.count_nonzero(np.diff(c.indptr))) for c in prog.tiles]
        assert t["bytes_psum"] <= (sum(touched[:-1]) + sum(touched[1:])) * row
        assert t["bytes_psum"] < 2 * (tiles - 1) * big.n * row
        ks = sum(np.diff(c.indptr) > 0 for c in prog.tiles)      # tiles each row has edges in
        assert t["bytes_psum"] == 2 * int(np.maximum(ks - 1, 0).sum()) * row


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
