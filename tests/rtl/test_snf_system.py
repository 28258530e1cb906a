"""The whole snf accelerator's memory image (`hwforge.rtl.gcn.system_image`) and how the target splits a graph
into runs of chained layers. Fast: no simulation (the Verilator runs are in tests/compiler/test_snf_target.py)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hwforge.compiler.targets.snf import _segments
from hwforge.errors import ConfigError
from hwforge.rtl.gcn import Csr, D, SnfConfig, build_program
from hwforge.rtl.gcn.system import FAULTS, HEADER_WORDS, KIND_AGGREGATION, KIND_COMBINATION, RECORD_WORDS, SnfSystem
from hwforge.rtl.gcn.system_image import ALIGN, SystemLayer, build_system, padded_columns
from hwforge.rtl.gemm import GemmConfig, GemmLayer
from hwforge.rtl.gemm import build_program as gemm_program
from hwforge.rtl.gemm.program import F

CFG = SnfConfig(engines=1, cache_kb=1, ways=2, lanes=2, max_row_lines=1, max_chunk=4, candidates=(1,))
COMB = GemmConfig(rows=2, cols=2, width=16, acc_width=32, dataflow="ws", bus_width=32)


def _chain():
    """comb (4 x 3 -> 2, output padded to whole lines) -> agg (4 vertices) -> comb (-> 1)."""
    rng = np.random.default_rng(0)
    csr = Csr([0, 2, 3, 4, 6], [0, 1, 1, 2, 3, 0], rng.integers(-99, 99, 6))
    pad = padded_columns(CFG, 2)
    w1 = np.zeros((pad, 3), np.int64)
    w1[:2] = rng.integers(-9, 9, (2, 3))
    first = gemm_program(COMB, [GemmLayer(weight=w1, bias=None, multiplier=1, shift=8)], rng.integers(-9, 9, (4, 3)))
    agg = build_program(CFG, csr, np.zeros((4, 2), np.int64))
    last = gemm_program(COMB, [GemmLayer(weight=rng.integers(-9, 9, (1, 2)), bias=None, multiplier=1, shift=8)],
                        np.zeros((4, 2), np.int64))
    return [SystemLayer("combination", first), SystemLayer("aggregation", agg), SystemLayer("combination", last)]


def test_image_has_the_layer_table_aligned_bases_and_chained_pointers() -> None:
    layers = _chain()
    prog = build_system(CFG, layers, [False, True, True])
    w = prog.words
    assert w[0] == 3 and w[1] == prog.log_addr and prog.size == prog.log_addr + 3 * RECORD_WORDS
    kinds = [w[HEADER_WORDS + 2 * i] for i in range(3)]
    assert kinds == [KIND_COMBINATION, KIND_AGGREGATION, KIND_COMBINATION]
    bases = [w[HEADER_WORDS + 2 * i + 1] for i in range(3)]
    assert bases == [layer.base for layer in layers] and all(b % ALIGN == 0 for b in bases)
    # the aggregation reads its features from the first combination's output (relative to its own base)
    dst = layers[0].program.plans[0].dst
    assert (bases[1] + w[bases[1] + D.X]) & 0xFFFFFFFF == bases[0] + dst
    # the last combination reads the aggregation's line-padded rows through its source stride
    d = bases[2] + 1
    assert (bases[2] + w[d + F.SRC]) & 0xFFFFFFFF == bases[1] + layers[1].program.out_addr
    assert w[d + F.SRC_STRIDE] == CFG.elems_per_line and w[d + F.A_STEP] % CFG.elems_per_line == 0
    # outputs and the log are inside the dumped range
    lo, hi = prog.output_range()
    assert lo <= bases[0] + dst and hi == prog.size


def test_an_aggregation_refuses_rows_in_another_layout() -> None:
    layers = _chain()
    unpadded = gemm_program(COMB, [GemmLayer(weight=np.ones((2, 3), np.int64), bias=None, multiplier=1, shift=8)],
                            np.ones((4, 3), np.int64))
    with pytest.raises(ConfigError, match="needs rows of"):
        build_system(CFG, [SystemLayer("combination", unpadded), layers[1]], [False, True])


def test_segments_split_at_host_ops() -> None:
    def node(name: str, op: str, *inputs: str) -> SimpleNamespace:
        return SimpleNamespace(name=name, op=op, inputs=list(inputs))

    nodes = [node("c1", "qmatmul_fixed", "x"), node("a1", "qspmm", "c1"), node("add", "qadd_fixed", "a1", "x"),
             node("c2", "qmatmul_fixed", "add"), node("a2", "qspmm", "c2"), node("c3", "qmatmul_fixed", "a2")]
    graph = SimpleNamespace(nodes=lambda: nodes)
    assert [[n.name for n in seg] for seg in _segments(graph)] == [["c1", "a1"], ["c2", "a2", "c3"]]


def test_system_elaborates_and_names_its_faults() -> None:
    from amaranth.back import rtlil

    assert {"drop_last_edge", "flip_acc_bit", "skip_last_layer"} <= set(FAULTS)
    with pytest.raises(ConfigError, match="unknown fault"):
        SnfSystem(CFG, COMB, fault="nope")
    with pytest.raises(ConfigError, match="bus"):
        SnfSystem(CFG, GemmConfig(rows=2, cols=2, width=16, acc_width=32, bus_width=64))
    text = rtlil.convert(SnfSystem(CFG, COMB), name="snf_system")
    assert "aggregation" in text and "combination" in text
