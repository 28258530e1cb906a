"""Graph-convolution IR ops: float spmm/affine, fixed-point qspmm/qmatmul_fixed/qaffine/qadd_fixed, checked
against straightforward Python loops that spell out CONTRACTS.md's rounding, wrapping and saturation."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hwforge.errors import IRError
from hwforge.ir import Graph, TensorType, fixed_dtype, graph_from_json, graph_to_json, interpret
from hwforge.ir.types import storage_numpy_dtype


# ------------------------------------------------------------------------------------- loop references
def _round_shift(acc: int, shift: int) -> int:
    """Round half up, arithmetic shift (Python's >> floors)."""
    return (acc + (1 << (shift - 1))) >> shift if shift else acc


def _wrap(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


def _sat(v: int, bits: int) -> int:
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, v))


def _finish(acc: int, shift: int, relu: bool, acc_bits: int, out_bits: int) -> int:
    v = _round_shift(_wrap(acc, acc_bits), shift)
    return _sat(max(v, 0) if relu else v, out_bits)


def loop_qspmm(x, indptr, indices, values, bias, shift, relu, acc_bits, out_bits):
    out = np.zeros((len(indptr) - 1, x.shape[1]), dtype=np.int64)
    for v in range(len(indptr) - 1):
        for f in range(x.shape[1]):
            acc = 0
            for e in range(indptr[v], indptr[v + 1]):
                acc = _wrap(acc + int(values[e]) * int(x[indices[e], f]), acc_bits)  # a register that wraps
            if bias is not None:
                acc = _wrap(acc + int(bias[f]), acc_bits)
            out[v, f] = _finish(acc, shift, relu, acc_bits, out_bits)
    return out


# ------------------------------------------------------------------------------------------- builders
def _csr_graph(indptr, indices, values, x_shape, *, fixed=None, bias=None, relu=False) -> Graph:
    """A graph x -> spmm/qspmm -> output. ``fixed`` = dict of attrs for qspmm (values/bias already raw)."""
    g = Graph("t")
    if fixed is None:
        g.add("x", "input", [], {}, TensorType(x_shape, "f32"))
        g.add_constant("v", np.asarray(values, np.float32), "f32")
        out_t = "f32"
    else:
        g.add("x", "input", [], {}, TensorType(x_shape, fixed_dtype(fixed["in_bits"], fixed["frac_in"])))
        vd = fixed_dtype(fixed["adj_bits"], fixed["frac_adj"])
        g.add_constant("v", np.asarray(values).astype(storage_numpy_dtype(vd)), vd)
        out_t = fixed_dtype(fixed["out_bits"], fixed["frac_out"])
    g.add_constant("p", np.asarray(indptr, np.int32), "int32")
    g.add_constant("i", np.asarray(indices, np.int32), "int32")
    ins = ["x", "p", "i", "v"]
    if bias is not None:
        bd = "f32" if fixed is None else fixed_dtype(fixed["acc_bits"] if fixed["acc_bits"] <= 32 else 32,
                                                     fixed["frac_in"] + fixed["frac_adj"])
        g.add_constant("b", np.asarray(bias).astype(storage_numpy_dtype(bd)), bd)
        ins.append("b")
    shape = (len(indptr) - 1, x_shape[1])
    if fixed is None:
        g.add("y", "spmm", ins, {"relu": relu}, TensorType(shape, out_t))
    else:
        attrs = {k: fixed[k] for k in ("frac_in", "frac_adj", "frac_out", "out_bits", "acc_bits")}
        g.add("y", "qspmm", ins, {**attrs, "relu": relu}, TensorType(shape, out_t))
    g.add("out", "output", ["y"], {}, TensorType(shape, out_t))
    g.verify()
    return g


def _random_csr(rng, rows, cols, nnz_per_row=3):
    indptr, indices = [0], []
    for _ in range(rows):
        k = int(rng.integers(0, nnz_per_row + 1))
        indices += sorted(rng.choice(cols, size=min(k, cols), replace=False).tolist())
        indptr.append(len(indices))
    return np.array(indptr), np.array(indices, dtype=np.int64)


# ------------------------------------------------------------------------------------------------ tests
def test_spmm_float_equals_dense():
    rng = np.random.default_rng(0)
    indptr, indices = _random_csr(rng, 7, 5)
    values = rng.standard_normal(len(indices)).astype(np.float32)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    dense = np.zeros((7, 5), np.float32)
    dense[np.repeat(np.arange(7), np.diff(indptr)), indices] = values
    for b, relu in ((None, False), (bias, True)):
        y = interpret(_csr_graph(indptr, indices, values, (5, 4), bias=b, relu=relu), {"x": x})["out"].numpy()
        want = dense @ x + (0 if b is None else b)
        np.testing.assert_allclose(y, np.maximum(want, 0) if relu else want, rtol=1e-5, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([(8, 14, 8, 16, 32), (8, 14, 10, 16, 24), (4, 6, 2, 8, 12),
                                                   (8, 14, 8, 12, 32), (0, 0, 0, 8, 64)]),
       st.booleans(), st.booleans())
def test_qspmm_matches_python_loop(seed, fmt, relu, with_bias):
    frac_in, frac_adj, frac_out, out_bits, acc_bits = fmt
    rng = np.random.default_rng(seed)
    rows, cols, feats = int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 4))
    indptr, indices = _random_csr(rng, rows, cols, 4)
    in_bits = adj_bits = 16
    x = rng.integers(-(1 << 15), 1 << 15, (cols, feats))
    values = rng.integers(-(1 << 15), 1 << 15, len(indices))
    bias_bits = min(acc_bits, 32)
    bias = rng.integers(-(1 << (bias_bits - 1)), 1 << (bias_bits - 1), feats) if with_bias else None
    fixed = dict(in_bits=in_bits, adj_bits=adj_bits, frac_in=frac_in, frac_adj=frac_adj, frac_out=frac_out,
                 out_bits=out_bits, acc_bits=acc_bits)
    g = _csr_graph(indptr, indices, values, (cols, feats), fixed=fixed, bias=bias, relu=relu)
    got = interpret(g, {"x": torch.from_numpy(x.astype(np.int16))})["out"].numpy()
    want = loop_qspmm(x, indptr, indices, values, bias, frac_in + frac_adj - frac_out, relu, acc_bits, out_bits)
    np.testing.assert_array_equal(got.astype(np.int64), want)


def _fixed_graph(op, x_shape, consts, attrs, out_shape, x_dtype="fixed(Q8.8)", out_dtype="fixed(Q8.8)"):
    g = Graph("t")
    g.add("x", "input", [], {}, TensorType(x_shape, x_dtype))
    names = ["x"]
    for name, (arr, dtype) in consts.items():
        g.add_constant(name, np.asarray(arr).astype(storage_numpy_dtype(dtype)), dtype)
        names.append(name)
    g.add("y", op, names, attrs, TensorType(out_shape, out_dtype))
    g.add("out", "output", ["y"], {}, TensorType(out_shape, out_dtype))
    return g


def test_qmatmul_fixed_and_qaffine_match_loops():
    rng = np.random.default_rng(1)
    x = rng.integers(-(1 << 15), 1 << 15, (3, 4))
    w = rng.integers(-(1 << 15), 1 << 15, (2, 4))
    b = rng.integers(-(1 << 31), 1 << 31, 2)
    attrs = {"frac_in": 8, "frac_w": 8, "frac_out": 8, "out_bits": 16, "acc_bits": 32, "relu": True}
    g = _fixed_graph("qmatmul_fixed", (3, 4), {"w": (w, "fixed(Q8.8)"), "b": (b, "fixed(Q16.16)")}, attrs, (3, 2))
    g.verify()
    got = interpret(g, {"x": x.astype(np.int16)})["out"].numpy()
    for i in range(3):
        for j in range(2):
            acc = sum(int(x[i, k]) * int(w[j, k]) for k in range(4)) + int(b[j])
            assert got[i, j] == _finish(acc, 8, True, 32, 16)
    scale = rng.integers(-(1 << 15), 1 << 15, 4)
    shift = rng.integers(-(1 << 31), 1 << 31, 4)
    attrs = {"frac_in": 8, "frac_scale": 8, "frac_out": 8, "out_bits": 16, "acc_bits": 32, "relu": False}
    g = _fixed_graph("qaffine", (3, 4), {"s": (scale, "fixed(Q8.8)"), "t": (shift, "fixed(Q16.16)")}, attrs, (3, 4))
    g.verify()
    got = interpret(g, {"x": x.astype(np.int16)})["out"].numpy()
    for i in range(3):
        for c in range(4):
            assert got[i, c] == _finish(int(x[i, c]) * int(scale[c]) + int(shift[c]), 8, False, 32, 16)


def test_qadd_saturates_and_conversions_round_half_even():
    g = Graph("t")
    t = TensorType((1, 4), "fixed(Q8.8)")
    g.add("a", "input", [], {}, t)
    g.add("b", "input", [], {}, t)
    g.add("s", "qadd_fixed", ["a", "b"], {}, t)
    g.add("out", "output", ["s"], {}, t)
    g.verify()
    a = np.array([[32767, -32768, 100, -5]], np.int16)
    b = np.array([[1, -1, -300, 2]], np.int16)
    assert interpret(g, {"a": a, "b": b})["out"].numpy().tolist() == [[32767, -32768, -200, -3]]
    g = Graph("c")
    g.add("x", "input", [], {}, TensorType((1, 5), "f32"))
    g.add("q", "quantize_fixed", ["x"], {"bits": 8, "frac": 1}, TensorType((1, 5), "fixed(Q7.1)"))
    g.add("d", "dequantize_fixed", ["q"], {"frac": 1}, TensorType((1, 5), "f32"))
    g.add("out", "output", ["d"], {}, TensorType((1, 5), "f32"))
    g.verify()
    x = np.array([[0.25, 0.75, -0.25, 100.0, -100.0]], np.float32)  # ties go to even; +-100 saturate
    assert interpret(g, {"x": x})["out"].numpy().tolist() == [[0.0, 1.0, -0.0, 63.5, -64.0]]


def test_verifier_errors_name_node_and_problem():
    indptr, indices, values = np.array([0, 1, 2]), np.array([0, 1]), np.array([1.0, 0.5])
    g = _csr_graph(indptr, indices, values, (2, 3))
    g.constants["i"] = np.array([0, 2], np.int32)
    with pytest.raises(IRError, match=r"node 'y' \(spmm\): indices \[0, 2\] out of range for 2 input rows"):
        g.verify()
    g = _csr_graph(indptr, indices, values, (2, 3))
    g.constants["p"] = np.array([0, 2, 1], np.int32)
    with pytest.raises(IRError, match="indptr must start at 0 and end at 2"):
        g.verify()
    fixed = dict(in_bits=16, adj_bits=16, frac_in=8, frac_adj=14, frac_out=8, out_bits=16, acc_bits=32)
    g = _csr_graph(indptr, indices, [16384, 8192], (2, 3), fixed=fixed, bias=[1, 2, 3])
    g["y"].attrs["frac_adj"] = 12
    with pytest.raises(IRError, match=r"node 'y' \(qspmm\): attribute 'frac_adj' = 12 does not match"):
        g.verify()
    g["y"].attrs["frac_adj"] = 14
    g["y"].attrs["frac_out"] = 10
    with pytest.raises(IRError, match=r"declared type fixed\(Q8.8\)\[2, 3\] does not match inferred .*Q6.10"):
        g.verify()
    g = Graph("b")
    g.add("x", "input", [], {}, TensorType((2, 3), "fixed(Q8.8)"))
    g.add_constant("w", np.zeros((4, 3), np.int16), "fixed(Q8.8)")
    g.add_constant("b", np.zeros(4, np.int32), "fixed(Q24.8)")
    attrs = {"frac_in": 8, "frac_w": 8, "frac_out": 8, "out_bits": 16, "acc_bits": 32, "relu": False}
    g.add("y", "qmatmul_fixed", ["x", "w", "b"], attrs, TensorType((2, 4), "fixed(Q8.8)"))
    g.add("out", "output", ["y"], {}, TensorType((2, 4), "fixed(Q8.8)"))
    with pytest.raises(IRError, match="bias must be fixed with 16 fraction bits"):
        g.verify()


def test_fixed_graph_json_round_trip(tmp_path):
    from hwforge.compiler import run_pipeline
    from hwforge.ir import load_graph, save_graph
    from hwforge.zoo import get

    m = get("resgcn-karate-d8")
    for g in (m.graph, run_pipeline(m.graph, ["fixed_point"]).graph):
        text = graph_to_json(g)
        back = graph_from_json(text, g.constants)
        assert graph_to_json(back) == text
        back = load_graph(save_graph(g, tmp_path / g.name))
        back.verify()
        a, b = interpret(g, m.example_inputs)["output"], interpret(back, m.example_inputs)["output"]
        assert torch.equal(a, b)
