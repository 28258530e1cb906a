"""Passes and pipeline: bit-exact integer graphs, accuracy, canonicalisation, pipeline error reporting."""

import json

import numpy as np
import pytest

from hwforge.compiler import PASSES, Calibration, default_int8_pipeline, load_model, run_pipeline
from hwforge.compiler.passes import Quantize
from hwforge.errors import ConfigError, IRError
from hwforge.ir import Graph, TensorType, graph_to_json, interpret, interpret_all
from hwforge.zoo import accuracy


def independent_int_model(g: Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Integer forward pass written without hwforge.ir.quant: Python-int requantisation, direct conv loops."""
    vals: dict[str, np.ndarray] = {}
    for n in g.nodes():
        a = n.attrs
        if n.op == "input":
            vals[n.name] = x
        elif n.op == "constant":
            vals[n.name] = g.constants[a["key"]].astype(np.int64) if n.type.dtype != "f32" else g.constants[a["key"]]
        elif n.op == "quantize":
            r = np.round(x.astype(np.float32) / np.float32(a["scale"]))
            vals[n.name] = np.clip(r, -128, 127).astype(np.int64)
        elif n.op in ("qlinear", "qconv2d"):
            xi, w, b = (vals[i] for i in n.inputs)
            if n.op == "qlinear":
                acc = xi @ w.T + b
            else:
                (ph, pw), (sh, sw) = a["padding"], a["stride"]
                xp = np.pad(xi, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
                oh, ow = n.type.shape[2:]
                acc = np.zeros((xi.shape[0], w.shape[0], oh, ow), np.int64) + b[None, :, None, None]
                for i in range(w.shape[2]):
                    for j in range(w.shape[3]):
                        patch = xp[:, :, i : i + sh * oh : sh, j : j + sw * ow : sw]
                        acc += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
            assert np.abs(acc).max() < 2**31  # no wrap expected for these models
            m, s = a["multiplier"], a["shift"]
            out = np.array([(int(v) * m + (1 << (s - 1))) >> s for v in acc.ravel()]).reshape(acc.shape)
            if a["relu"]:
                out = np.maximum(out, 0)
            vals[n.name] = np.clip(out, -128, 127)
        elif n.op == "flatten":
            vals[n.name] = vals[n.inputs[0]].reshape(vals[n.inputs[0]].shape[0], -1)
        elif n.op == "dequantize":
            vals[n.name] = vals[n.inputs[0]].astype(np.float32) * np.float32(a["scale"])
        elif n.op == "output":
            vals[n.name] = vals[n.inputs[0]]
        else:
            raise AssertionError(f"unexpected op {n.op}")
    return vals


@pytest.mark.parametrize("name", ["mlp-digits", "cnn-digits"])
def test_quantized_graph_bit_exact_with_independent_model(loaded, quantized, name):
    g = quantized[name]
    ops = [n.op for n in g.nodes() if n.op not in ("constant",)]
    assert ops[0] == "input" and ops[1] == "quantize" and ops[-2:] == ["dequantize", "output"]
    assert "relu" not in ops  # fused
    x = loaded[name].test_set[0]
    ours = {k: v.numpy() for k, v in interpret_all(g, {"x": x}).items()}
    ref = independent_int_model(g, x)
    for n in g.nodes():
        if n.op in ("quantize", "qlinear", "qconv2d", "flatten", "dequantize", "output"):
            np.testing.assert_array_equal(ours[n.name].astype(ref[n.name].dtype), ref[n.name], err_msg=n.name)
            if n.type.dtype == "int8":
                assert ours[n.name].dtype == np.int8


@pytest.mark.parametrize("name", ["mlp-digits", "cnn-digits"])
def test_int8_accuracy_close_to_float(loaded, quantized, name):
    m = loaded[name]
    x, y = m.test_set
    acc_f = accuracy(interpret(m.graph, {"x": x})["output"].numpy(), y)
    acc_q = accuracy(interpret(quantized[name], {"x": x})["output"].numpy(), y)
    print(f"{name}: float {acc_f:.2f}%  int8 {acc_q:.2f}%")
    assert acc_f >= 93.0
    assert abs(acc_f - acc_q) <= 2.0


def test_quantize_attrs_follow_contract(quantized):
    g = quantized["mlp-digits"]
    fc1 = g["fc1"]
    a = fc1.attrs
    assert set(a) >= {"multiplier", "shift", "relu", "acc_bits", "out_bits", "in_scale", "w_scale", "out_scale"}
    assert a["relu"] is True and g["fc2"].attrs["relu"] is False and a["acc_bits"] == 32 and a["out_bits"] == 8
    assert g[fc1.inputs[1]].type.dtype == "int8" and g[fc1.inputs[2]].type.dtype == "int32"
    from hwforge.ir.quant import quantize_multiplier

    assert (a["multiplier"], a["shift"]) == quantize_multiplier(a["in_scale"] * a["w_scale"] / a["out_scale"])


def test_quantize_bits_option_and_missing_calibration(loaded):
    m = loaded["mlp-digits"]
    g4 = run_pipeline(m.graph, default_int8_pipeline(bits=4), Calibration(m.calibration)).graph
    assert g4["fc1"].type.dtype == "int4" and g4["fc1.weight"].type.dtype == "int4"
    with pytest.raises(ConfigError, match="pass 'quantize' needs calibration"):
        run_pipeline(m.graph, default_int8_pipeline())
    with pytest.raises(ConfigError, match="bits must be 2..16"):
        Quantize(bits=1)
    with pytest.raises(ConfigError, match="at least one graph input"):
        Calibration({})


def test_passes_do_not_mutate_input_and_are_deterministic(loaded):
    m = loaded["cnn-digits"]
    before = graph_to_json(m.graph)
    a = run_pipeline(m.graph, default_int8_pipeline(), Calibration(m.calibration)).graph
    assert graph_to_json(m.graph) == before
    m2 = load_model("cnn-digits")  # frontend again, from scratch
    b = run_pipeline(m2.graph, default_int8_pipeline(), Calibration(m2.calibration)).graph
    assert graph_to_json(a) == graph_to_json(b)
    assert all(np.array_equal(a.constants[k], b.constants[k]) for k in a.constants)


def _chain_graph() -> Graph:
    g = Graph("c")
    g.add("x", "input", [], {}, TensorType((2, 3, 4), "f32"))
    g.add("d", "dropout", ["x"], {"p": 0.5}, TensorType((2, 3, 4), "f32"))
    g.add("i", "identity", ["d"], {}, TensorType((2, 3, 4), "f32"))
    g.add("f", "flatten", ["i"], {"start_dim": 1, "end_dim": -1}, TensorType((2, 12), "f32"))
    g.add("r1", "reshape", ["f"], {"shape": [-1, 6, 2]}, TensorType((2, 6, 2), "f32"))
    g.add("r2", "reshape", ["r1"], {"shape": [-1, 12]}, TensorType((2, 12), "f32"))
    g.add("r3", "reshape", ["r2"], {"shape": [-1, 12]}, TensorType((2, 12), "f32"))
    g.add("relu", "relu", ["r3"], {}, TensorType((2, 12), "f32"))
    g.add("output", "output", ["relu"], {}, TensorType((2, 12), "f32"))
    return g


def test_canonicalize_removes_noops_and_folds_reshapes():
    g = _chain_graph()
    out = PASSES["canonicalize"]().run(g)
    out.verify()
    assert [n.op for n in out.nodes()] == ["input", "reshape", "relu", "output"]
    x = np.random.default_rng(0).standard_normal((5, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(interpret(out, {"x": x})["output"], interpret(g, {"x": x})["output"])
    assert len(g) == 9  # input untouched


class BreakWeights:
    name = "break_weights"

    def run(self, graph, calibration=None):
        g = graph.copy()
        key = g["fc1.weight"].attrs["key"]
        g.constants[key] = np.zeros((64, 32), np.int8)
        g["fc1.weight"].type = TensorType((64, 32), "int8")
        return g


def test_pipeline_names_the_pass_that_broke_the_graph(loaded, tmp_path):
    m = loaded["mlp-digits"]
    passes = [*default_int8_pipeline(), BreakWeights()]
    with pytest.raises(IRError, match=r"after pass 'break_weights': node 'fc1' \(qlinear\): weight shape"):
        run_pipeline(m.graph, passes, Calibration(m.calibration), dump_dir=tmp_path)
    assert (tmp_path / "03-quantize.txt").exists() and not (tmp_path / "04-break_weights.txt").exists()


def test_pipeline_dumps_and_timings(loaded, tmp_path):
    m = loaded["mlp-digits"]
    res = run_pipeline(m.graph, ["canonicalize", "fuse_relu", "quantize"], Calibration(m.calibration),
                       dump_dir=tmp_path)
    assert [t[0] for t in res.timings] == ["canonicalize", "fuse_relu", "quantize"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["00-input.json", "00-input.txt", "01-canonicalize.json", "01-canonicalize.txt",
                     "02-fuse_relu.json", "02-fuse_relu.txt", "03-quantize.json", "03-quantize.txt"]
    assert "qlinear" in (tmp_path / "03-quantize.txt").read_text()
    assert json.loads((tmp_path / "03-quantize.json").read_text())["schema"] == 1
    with pytest.raises(ConfigError, match="unknown pass"):
        run_pipeline(m.graph, ["nope"])
    assert res.passes == ["canonicalize()", "fuse_relu()", "quantize(bits=8, acc_bits=32)"]
    assert (tmp_path / "03-quantize.txt").read_text().startswith("# after quantize(bits=8, acc_bits=32)")


def test_zoo_graphs_round_trip_json(loaded, quantized, tmp_path):
    from hwforge.ir import load_graph, save_graph

    for i, g in enumerate([*(m.graph for m in loaded.values()), *quantized.values()]):
        save_graph(g, tmp_path / str(i))
        back = load_graph(tmp_path / str(i))
        assert graph_to_json(back) == graph_to_json(g)
        x = {"x": next(iter(loaded.values())).example_inputs["x"]} if g.name == "mlp-digits" else None
        if x:
            np.testing.assert_array_equal(interpret(back, x)["output"], interpret(g, x)["output"])
