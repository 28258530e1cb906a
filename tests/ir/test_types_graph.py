"""TensorType, Graph structure, verifier messages, printer."""

import numpy as np
import pytest

from hwforge.errors import IRError
from hwforge.ir import Graph, Node, TensorType, get_op, parse_dtype, print_graph, registered_ops


@pytest.mark.parametrize(
    "dtype,expected",
    [("f32", ("float", 32, 0)), ("f16", ("float", 16, 0)), ("int8", ("int", 8, 0)), ("int2", ("int", 2, 0)),
     ("int32", ("int", 32, 0)), ("fixed(Q8.8)", ("fixed", 16, 8)), ("fixed(Q1.15)", ("fixed", 16, 15))],
)
def test_parse_dtype(dtype, expected):
    assert parse_dtype(dtype) == expected


@pytest.mark.parametrize("bad", ["int1", "int33", "int08", "f64", "fixed(Q0.8)", "fixed(Q20.20)", "", "INT8"])
def test_bad_dtypes_rejected(bad):
    with pytest.raises(ValueError):
        TensorType((1,), bad)


def mlp_graph(k: int = 64, n: int = 10, w_k: int | None = None) -> Graph:
    g = Graph("t")
    g.add("x", "input", [], {}, TensorType((4, k), "int8"))
    g.add_constant("fc1.weight", np.zeros((n, w_k or k), np.int8), "int8")
    g.add_constant("fc1.bias", np.zeros((n,), np.int32), "int32")
    attrs = {"multiplier": 1 << 15, "shift": 20, "relu": True, "acc_bits": 32, "out_bits": 8,
             "in_scale": 0.1, "w_scale": 0.1, "out_scale": 0.1}
    g.add("fc1", "qlinear", ["x", "fc1.weight", "fc1.bias"], attrs, TensorType((4, n), "int8"))
    g.add("output", "output", ["fc1"], {}, TensorType((4, n), "int8"))
    return g


def test_verify_ok_and_error_names_node_and_op():
    mlp_graph().verify()
    msg = r"node 'fc1' \(qlinear\): weight shape \(10, 32\) does not match input features 64"
    with pytest.raises(IRError, match=msg):
        mlp_graph(w_k=32).verify()


def test_verify_catches_wrong_declared_type_and_missing_attr():
    g = mlp_graph()
    g["fc1"].type = TensorType((4, 11), "int8")
    with pytest.raises(IRError, match=r"node 'fc1' \(qlinear\): declared type"):
        g.verify()
    g = mlp_graph()
    del g["fc1"].attrs["shift"]
    with pytest.raises(IRError, match="missing attribute 'shift'"):
        g.verify()


def test_constant_checks_dtype_and_range():
    g = mlp_graph()
    g.constants["fc1.weight"] = np.zeros((10, 64), np.int16)
    with pytest.raises(IRError, match=r"node 'fc1.weight' \(constant\): array dtype int16"):
        g.verify()
    g = Graph("r")
    g.add_constant("c", np.array([7, 8], np.int8), "int4")
    g.add("output", "output", ["c"], {}, TensorType((2,), "int4"))
    with pytest.raises(IRError, match="do not fit int4"):
        g.verify()


def test_structure_helpers_and_order():
    g = mlp_graph()
    assert [n.name for n in g.nodes()][0] == "x"  # inputs lead, then lexicographic topological order
    assert g.inputs == ["x"] and g.outputs == ["output"]
    assert g.users("x") == ["fc1"]
    c = g.copy()
    c["fc1"].attrs["relu"] = False
    c.constants["fc1.bias"][0] = 5
    assert g["fc1"].attrs["relu"] is True and g.constants["fc1.bias"][0] == 0  # deep copy
    with pytest.raises(IRError, match="still used"):
        g.remove_node("fc1")
    with pytest.raises(IRError, match="duplicate"):
        g.add("fc1", "relu", ["x"], {}, TensorType((4, 64), "int8"))
    g.add("r", "relu", ["x"], {}, TensorType((4, 64), "int8"))
    g.replace_node("fc1", Node("fc1", "qlinear", ["r", "fc1.weight", "fc1.bias"], dict(g["fc1"].attrs), g["fc1"].type))
    assert g.users("r") == ["fc1"] and g.users("x") == ["r"]
    g.verify()


def test_attrs_must_be_plain_json():
    g = Graph("a")
    with pytest.raises(IRError, match="not a plain JSON value"):
        g.add("x", "input", [], {"bad": object()}, TensorType((1,), "f32"))
    n = g.add("y", "input", [], {"t": (1, 2), "n": np.int64(3)}, TensorType((1,), "f32"))
    assert n.attrs == {"t": [1, 2], "n": 3} and type(n.attrs["n"]) is int


def test_unknown_op_and_cycle():
    g = Graph("u")
    g.add("x", "input", [], {}, TensorType((1,), "f32"))
    g.add("s", "sigmoid", ["x"], {}, TensorType((1,), "f32"))
    g.add("output", "output", ["s"], {}, TensorType((1,), "f32"))
    with pytest.raises(IRError, match=r"node 's' \(sigmoid\): unknown op"):
        g.verify()


def test_registry_has_contract_ops():
    for op in ["input", "constant", "output", "linear", "conv2d", "relu", "add", "flatten", "reshape",
               "quantize", "dequantize", "qlinear", "qconv2d"]:
        assert op in registered_ops()
        assert get_op(op).reference is not None


def test_printer_format():
    text = print_graph(mlp_graph())
    assert "%fc1 = qlinear(%x, %fc1.weight, %fc1.bias) {acc_bits=32, in_scale=0.1, multiplier=32768," in text
    assert "relu=true" in text and text.splitlines()[-2].strip() == "%output = output(%fc1) : int8[4, 10]"
