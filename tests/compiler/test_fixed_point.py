"""The ``fixed_point`` pass: bit-exact against an independent numpy model of the fixed-point GCN/ResGCN
(written from CONTRACTS.md, sharing no code with hwforge.ir.quant), error against float, options."""

import numpy as np
import pytest

from hwforge import zoo
from hwforge.compiler import run_pipeline
from hwforge.compiler.passes import FixedPoint, fixed_point_error
from hwforge.errors import ConfigError
from hwforge.graphs import normalized_adjacency
from hwforge.ir import Graph, TensorType, interpret, interpret_all


def _fix(x, frac, bits):
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return np.clip(np.round(np.asarray(x, np.float64) * 2.0**frac), lo, hi).astype(np.int64)


def _requant(acc, shift, relu, acc_bits=32, out_bits=16):
    acc = ((acc + 2 ** (acc_bits - 1)) % 2**acc_bits) - 2 ** (acc_bits - 1)  # two's-complement wrap
    y = (acc + (1 << (shift - 1))) // 2**shift if shift else acc  # floor division = arithmetic shift
    if relu:
        y = np.maximum(y, 0)
    return np.clip(y, -(2 ** (out_bits - 1)), 2 ** (out_bits - 1) - 1)


def numpy_fixed_model(g: Graph, x: np.ndarray, a_csr, frac=8, frac_w=8, frac_adj=14) -> np.ndarray:
    """Fixed-point forward of a float GCN/ResGCN graph (linear/spmm/affine/add), Q8.8 / Q2.14 / 32-bit acc."""
    n = len(a_csr.indptr) - 1
    rows = np.repeat(np.arange(n), np.diff(a_csr.indptr))
    adj = _fix(a_csr.values, frac_adj, 16)
    val = {"x": _fix(x, frac, 16)}
    c = g.constant_value
    for node in g.nodes():
        ins, relu = node.inputs, node.attrs.get("relu", False)
        if node.op == "linear":
            acc = val[ins[0]] @ _fix(c(ins[1]), frac_w, 16).T
            if len(ins) == 3:
                acc = acc + _fix(c(ins[2]), frac + frac_w, 32)
            val[node.name] = _requant(acc, frac_w, relu)
        elif node.op == "spmm":
            h = val[ins[0]]
            acc = np.zeros((n, h.shape[1]), np.int64)
            np.add.at(acc, rows, adj[:, None] * h[a_csr.indices])
            acc = acc + _fix(c(ins[4]), frac + frac_adj, 32)
            val[node.name] = _requant(acc, frac_adj, relu)
        elif node.op == "affine":
            acc = val[ins[0]] * _fix(c(ins[1]), frac_w, 16) + _fix(c(ins[2]), frac + frac_w, 32)
            val[node.name] = _requant(acc, frac_w, relu)
        elif node.op == "add":
            val[node.name] = np.clip(val[ins[0]] + val[ins[1]], -(2**15), 2**15 - 1)
        elif node.op == "output":
            val[node.name] = val[ins[0]]
    return val[g.outputs[0]]


@pytest.fixture(scope="module")
def models():
    return {n: zoo.get(n) for n in ("gcn-karate", "gcn-syn500", "resgcn-syn500-d8", "resgcn-karate-d8")}


@pytest.mark.parametrize("name,bound", [("gcn-karate", 0.02), ("gcn-syn500", 0.02), ("resgcn-karate-d8", 0.15),
                                        ("resgcn-syn500-d8", 0.1)])
def test_bit_exact_against_numpy_model_and_error_vs_float(models, name, bound):
    m = models[name]
    fg = run_pipeline(m.graph, [FixedPoint()]).graph
    ops = {n.op for n in fg.nodes()}
    assert {"qmatmul_fixed", "qspmm", "quantize_fixed", "dequantize_fixed"} <= ops
    assert not ops & {"linear", "spmm", "affine", "add"}  # everything converted
    x = m.example_inputs["x"]
    dq = fg[fg[fg.outputs[0]].inputs[0]]
    assert dq.op == "dequantize_fixed"
    raw = interpret_all(fg, m.example_inputs)[dq.inputs[0]].numpy()
    want = numpy_fixed_model(m.graph, x, normalized_adjacency(m.extra["graph_data"]))
    np.testing.assert_array_equal(raw.astype(np.int64).reshape(want.shape), want.reshape(want.shape))
    err = fixed_point_error(m.graph, fg, m.example_inputs)
    print(f"{name}: fixed(Q8.8) vs float max abs {err['max_abs']:.4f} mean {err['mean_abs']:.4f} "
          f"(float max {err['float_max_abs']:.2f})")
    assert err["max_abs"] <= bound * err["float_max_abs"]
    if name.startswith("gcn"):  # classes mostly unchanged by the datapath
        ref, got = interpret(m.graph, m.example_inputs)["output"], interpret(fg, m.example_inputs)["output"]
        assert (ref.argmax(1) == got.argmax(1)).float().mean() >= 0.97


def test_wider_fraction_reduces_error(models):
    m = models["resgcn-syn500-d8"]
    e8 = fixed_point_error(m.graph, run_pipeline(m.graph, [FixedPoint()]).graph, m.example_inputs)
    fg = run_pipeline(m.graph, [FixedPoint(fmt="Q6.10", adj_fmt="fixed(Q2.14)", acc_bits=32)]).graph
    assert fg["block1"].type.dtype == "fixed(Q6.10)" and fg["adj.values"].type.dtype == "fixed(Q2.14)"
    e10 = fixed_point_error(m.graph, fg, m.example_inputs)
    print(f"resgcn-syn500-d8: Q8.8 max abs {e8['max_abs']:.4f}, Q6.10 max abs {e10['max_abs']:.4f}")
    assert e10["max_abs"] < e8["max_abs"] / 2


def test_options_and_errors(models):
    g = models["gcn-karate"].graph
    for opts, msg in (({"fmt": "Q8"}, "option 'fmt'"), ({"adj_fmt": "int16"}, "option 'adj_fmt'"),
                      ({"acc_bits": "x"}, "acc_bits must be wider"), ({"acc_bits": 16}, "wider")):
        with pytest.raises(ConfigError, match=msg):
            FixedPoint(**opts)
    fg = run_pipeline(g, [FixedPoint(weight_fmt="Q4.12")]).graph
    assert fg["conv1.weight"].type.dtype == "fixed(Q4.12)" and fg["conv1.bias"].type.dtype == "fixed(Q10.22)"
    assert fg["conv1.lin"].attrs["frac_w"] == 12


def test_unknown_ops_stay_float():
    g = Graph("mixed")
    g.add("x", "input", [], {}, TensorType((3, 2), "f32"))
    g.add_constant("w", np.eye(2, dtype=np.float32), "f32")
    g.add("l", "linear", ["x", "w"], {}, TensorType((3, 2), "f32"))
    g.add("f", "flatten", ["l"], {"start_dim": 0}, TensorType((6,), "f32"))
    g.add("output", "output", ["f"], {}, TensorType((6,), "f32"))
    fg = run_pipeline(g, [FixedPoint()]).graph
    assert [n.op for n in fg.nodes() if n.op not in ("constant",)] == [
        "input", "quantize_fixed", "qmatmul_fixed", "dequantize_fixed", "flatten", "output"]
    x = np.array([[0.5, -1.25], [3.0, 0.0], [1 / 3, 2.0]], np.float32)
    np.testing.assert_allclose(interpret(fg, {"x": x})["output"].numpy(), x.reshape(-1), atol=2**-9)
