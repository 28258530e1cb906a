"""The trained deep residual GCNs on real Cora (resgcn-cora-d8/-d16/-d28): registered and listed, shipped weights
with the keys and shapes `resgcn_graph` expects, the recorded float test accuracy, the fixed-point integer
reference (what the snf hardware computes bit-exactly) within a point of float, `resgcn_graph`'s weight
checks, and deterministic training of a few epochs (the full runs take 15-30 s each; retraining the shipped
files is ``python -m hwforge.zoo.gcn_train resgcn-cora-d8 resgcn-cora-d16 resgcn-cora-d28``)."""

import numpy as np
import pytest

from hwforge import zoo
from hwforge.compiler.passes import FixedPoint
from hwforge.errors import ConfigError
from hwforge.graphs import karate_club, synthetic_features
from hwforge.ir import interpret
from hwforge.npzio import npz_bytes
from hwforge.zoo.digits_models import weights_path
from hwforge.zoo.gcn import resgcn_weight_names
from hwforge.zoo.gcn_models import PLANETOID_MODELS, RESGCN_HIDDEN
from hwforge.zoo.gcn_train import MODELS, split_accuracy, train_planetoid_resgcn
from tests.conftest import run_cli

# depth -> float accuracy (%) on the 1,000 Cora test nodes printed by `python -m hwforge.zoo.gcn_train`
RECORDED = {8: 77.9, 16: 77.9, 28: 77.4}
NAMES = {d: f"resgcn-cora-d{d}" for d in RECORDED}


def test_registered_trainable_and_listed():
    assert set(NAMES.values()) <= set(zoo.names()) and set(NAMES.values()) <= set(MODELS)
    assert all(PLANETOID_MODELS[n].depth == d and PLANETOID_MODELS[n].dataset == "cora" for d, n in NAMES.items())
    listed = {m["name"]: m["description"] for m in run_cli("zoo", "--json").json["models"]}
    assert all("Cora" in listed[n] and "trained" in listed[n] for n in NAMES.values())


@pytest.mark.parametrize("depth", sorted(RECORDED))
def test_shipped_weights(depth):
    with np.load(weights_path(NAMES[depth]), allow_pickle=False) as z:
        w = {k: np.array(z[k]) for k in z.files}
    assert sorted(w) == sorted(resgcn_weight_names(depth))
    assert all(v.dtype == np.float32 and np.isfinite(v).all() for v in w.values())
    assert w["conv0.weight"].shape == (RESGCN_HIDDEN, 1433) and w["classifier.weight"].shape == (7, RESGCN_HIDDEN)
    assert w[f"block{depth}.conv.weight"].shape == (RESGCN_HIDDEN, RESGCN_HIDDEN)
    m = zoo.get(NAMES[depth])
    ops = [n.op for n in m.graph.nodes()]
    assert (ops.count("spmm"), ops.count("affine"), ops.count("add")) == (depth + 1, depth + 1, depth)
    np.testing.assert_array_equal(m.graph.constant_value("conv0.weight"), w["conv0.weight"])


def test_d8_float_accuracy_and_fixed_point_reference():
    m = zoo.get(NAMES[8])
    labels = m.test_set[1]
    logits = interpret(m.graph, m.example_inputs)["output"].numpy()
    acc = split_accuracy(logits, labels)
    # the integer reference of the snf target's fixed-point graph (Q8.8), which verify matches bit for bit
    fixed = interpret(FixedPoint().run(m.graph), m.example_inputs)["output"].numpy()
    acc_fixed = split_accuracy(fixed, labels)
    print(f"resgcn-cora-d8: float {acc:.1f}%, fixed point {acc_fixed:.1f}% on the 1,000 test nodes")
    assert acc == pytest.approx(RECORDED[8], abs=0.3) and abs(acc_fixed - acc) <= 1.0


def test_resgcn_graph_weight_checks():
    g, x = karate_club(), synthetic_features(34, 8, 0)
    w = {k: np.full((3, 3) if k.startswith("block") and ".conv.weight" in k else (3,), 0.1, np.float32)
         for k in resgcn_weight_names(2)}
    w.update({"conv0.weight": np.full((3, 8), 0.1, np.float32), "classifier.weight": np.ones((2, 3), np.float32),
              "classifier.bias": np.zeros(2, np.float32)})
    graph = zoo.resgcn_graph(g, x, 2, hidden=3, classes=2, weights=w)
    np.testing.assert_array_equal(graph.constant_value("classifier.weight"), w["classifier.weight"])
    assert tuple(interpret(graph, {"x": x})["output"].shape) == (34, 2)
    with pytest.raises(ConfigError, match="lack block2.norm.bias"):
        zoo.resgcn_graph(g, x, 2, hidden=3, classes=2, weights={k: v for k, v in w.items() if k != "block2.norm.bias"})
    with pytest.raises(ConfigError, match=r"conv0.weight has shape \(3, 7\), expected \(3, 8\)"):
        zoo.resgcn_graph(g, x, 2, hidden=3, classes=2, weights={**w, "conv0.weight": np.zeros((3, 7), np.float32)})


def test_training_is_deterministic():
    a = train_planetoid_resgcn(NAMES[8], epochs=4)
    b = train_planetoid_resgcn(NAMES[8], epochs=4)
    assert sorted(a) == sorted(resgcn_weight_names(8)) and npz_bytes(a) == npz_bytes(b)
    assert npz_bytes(train_planetoid_resgcn(NAMES[8], epochs=4, seed=1)) != npz_bytes(a)
