"""JSON round trip (property-based), save/load with .npy weights, malformed input."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwforge.errors import ConfigError, HwforgeError, IRError
from hwforge.ir import Graph, TensorType, graph_from_json, graph_to_json, load_graph, save_graph, storage_numpy_dtype

DTYPES = ["f32", "f16", "int8", "int2", "int5", "int16", "int32", "fixed(Q8.8)", "fixed(Q1.7)"]

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**62), 2**62), st.text(max_size=8),
    st.floats(allow_nan=False, allow_infinity=False),
)
json_value = st.recursive(
    json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=8
)
attrs_st = st.dictionaries(st.sampled_from(["alpha", "note", "tile", "meta", "p"]), json_value, max_size=3)


@st.composite
def random_graphs(draw) -> Graph:
    """Chains/DAGs of relu, add, flatten and constants over random dtypes and shapes, with random extra attrs."""
    g = Graph(draw(st.sampled_from(["g", "model-1", "m.x"])))
    rng = np.random.default_rng(draw(st.integers(0, 1000)))
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    quant = draw(st.none() | st.fixed_dictionaries({"scale": st.floats(1e-6, 10), "bits": st.integers(2, 32)}))
    t = TensorType(shape, dtype, quant=quant)
    values = []
    for i in range(draw(st.integers(1, 2))):
        g.add(f"in{i}", "input", [], draw(attrs_st), t)
        values.append(f"in{i}")
    for i in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["relu", "add", "const", "flatten"]))
        src = draw(st.sampled_from(values))
        name = f"n{i}"
        if kind == "relu":
            g.add(name, "relu", [src], draw(attrs_st), g[src].type)
        elif kind == "const":
            sd = storage_numpy_dtype(dtype)
            arr = (rng.standard_normal(g[src].type.shape) * 3).astype(sd) if sd.kind == "f" else \
                rng.integers(-2, 2, g[src].type.shape).astype(sd)
            g.add_constant(name, arr, dtype)
        elif kind == "flatten":
            g.add(name, "flatten", [src], {"start_dim": 0, "end_dim": -1, **draw(attrs_st)},
                  TensorType((g[src].type.numel,), dtype))
        elif kind == "add" and dtype in ("f32", "f16"):
            other = draw(st.sampled_from([v for v in values if g[v].type.shape == g[src].type.shape]))
            g.add(name, "add", [src, other], draw(attrs_st), g[src].type)
        else:
            continue
        values.append(name)
    for j, v in enumerate(draw(st.lists(st.sampled_from(values), min_size=1, max_size=2, unique=True))):
        g.add(f"out{j}", "output", [v], {}, g[v].type)
    return g


def assert_same(a: Graph, b: Graph) -> None:
    assert graph_to_json(a) == graph_to_json(b)
    assert a.inputs == b.inputs and a.outputs == b.outputs
    for na, nb in zip(a.nodes(), b.nodes(), strict=True):
        assert (na.name, na.op, na.inputs, na.attrs, na.type) == (nb.name, nb.op, nb.inputs, nb.attrs, nb.type)
        assert json.dumps(na.attrs, sort_keys=True) == json.dumps(nb.attrs, sort_keys=True)  # bool/int/float kept
    assert sorted(a.constants) == sorted(b.constants)
    for k in a.constants:
        assert a.constants[k].dtype == b.constants[k].dtype
        np.testing.assert_array_equal(a.constants[k], b.constants[k])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_graphs())
def test_json_round_trip_random_graphs(g):
    g.verify()
    back = graph_from_json(graph_to_json(g), g.constants)
    back.verify()
    assert_same(g, back)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(random_graphs())
def test_save_load_round_trip(tmp_path_factory, g):
    d = tmp_path_factory.mktemp("ir")
    save_graph(g, d)
    assert_same(g, load_graph(d))
    assert graph_to_json(load_graph(d)) == (d / "ir.json").read_text()


def small_graph() -> Graph:
    g = Graph("s")
    g.add("x", "input", [], {}, TensorType((2, 3), "f32"))
    g.add_constant("w", np.ones((4, 3), np.float32), "f32")
    g.add("fc", "linear", ["x", "w"], {"note": 0.1}, TensorType((2, 4), "f32"))
    g.add("output", "output", ["fc"], {}, TensorType((2, 4), "f32"))
    return g


def test_json_is_deterministic_and_versioned():
    text = graph_to_json(small_graph())
    assert text == graph_to_json(small_graph().copy())
    data = json.loads(text)
    assert data["schema"] == 1 and list(data) == sorted(data)


@pytest.mark.parametrize(
    "mutate,exc,msg",
    [
        (lambda d: d.update(schema=99), ConfigError, "schema 99 is not supported"),
        (lambda d: d.pop("schema"), ConfigError, "no 'schema'"),
        (lambda d: d["nodes"][0].pop("type"), IRError, "malformed IR"),
        (lambda d: d["nodes"].reverse(), IRError, "malformed IR"),
        (lambda d: d["constants"]["w"].update(shape=[9]), IRError, "constant 'w'"),
    ],
)
def test_malformed_json_one_line_errors(mutate, exc, msg):
    data = json.loads(graph_to_json(small_graph()))
    mutate(data)
    with pytest.raises(exc, match=msg) as info:
        graph_from_json(json.dumps(data), small_graph().constants)
    assert "\n" not in str(info.value)


def test_load_graph_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_graph(tmp_path)
    (tmp_path / "ir.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_graph(tmp_path)
    save_graph(small_graph(), tmp_path / "ok")
    (tmp_path / "ok" / "weights" / "w.npy").write_bytes(b"garbage")
    with pytest.raises(HwforgeError, match="w.npy"):
        load_graph(tmp_path / "ok")
