"""The trained citation-graph GCNs (gcn-cora, gcn-citeseer): listed by ``hwforge zoo``, inputs and test-split
labels as documented, float test accuracy of the shipped weights through the IR interpreter, the verify
path's accuracy counting only the test nodes, and deterministic retraining."""

import numpy as np
import pytest

from hwforge import zoo
from hwforge.compiler import load_model
from hwforge.compiler.results import OutputMetrics
from hwforge.graphs import planetoid_graph, row_normalize
from hwforge.ir import interpret
from hwforge.npzio import npz_bytes
from hwforge.zoo.digits_models import weights_path
from hwforge.zoo.gcn_train import evaluate, main, split_accuracy, train_planetoid_gcn
from tests.conftest import run_cli

# name: data set, (nodes, classes), minimum float test accuracy (%) the shipped weights must reach
MODELS = {"gcn-cora": ("cora", (2708, 7), 79.0), "gcn-citeseer": ("citeseer", (3327, 6), 67.0)}


def test_zoo_cli_lists_citation_models():
    r = run_cli("zoo", "--json")
    assert r.code == 0
    listed = {m["name"]: m["description"] for m in r.json["models"]}
    assert "Cora" in listed["gcn-cora"] and "CiteSeer" in listed["gcn-citeseer"]
    assert {"gcn-cora-like", "gcn-pubmed-like"} <= set(listed)  # the synthetic ones stay


@pytest.mark.parametrize("name", sorted(MODELS))
def test_shipped_weights_reach_the_stated_test_accuracy(name):
    dataset, shape, minimum = MODELS[name]
    m = zoo.get(name)
    data = planetoid_graph(dataset)
    x, labels = m.test_set
    np.testing.assert_array_equal(x, row_normalize(data.features))  # the model's input: normalised features
    np.testing.assert_array_equal(m.example_inputs["x"], x)
    np.testing.assert_array_equal(np.flatnonzero(labels >= 0), data.test)  # only the 1,000 test nodes labelled
    np.testing.assert_array_equal(labels[data.test], data.graph.labels[data.test])
    logits = interpret(m.graph, m.example_inputs)["output"].numpy()
    assert logits.shape == shape
    acc = split_accuracy(logits, labels)
    want = float((logits[data.test].argmax(1) == data.graph.labels[data.test]).mean() * 100)
    print(f"{name}: float test accuracy {acc:.1f}% (1,000 test nodes)")
    assert acc == want and acc >= minimum
    # what `hwforge verify` reports: the same accuracy, over the labelled (test) rows only
    metrics = OutputMetrics.compare(logits, logits, labels)
    assert metrics.accuracy_float * 100 == pytest.approx(acc) and metrics.accuracy_hardware == metrics.accuracy_float
    with np.load(weights_path(name), allow_pickle=False) as z:
        assert sorted(z.files) == ["conv1.bias", "conv1.weight", "conv2.bias", "conv2.weight"]
        assert all(z[k].dtype == np.float32 for k in z.files)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_load_model_path_and_source_hash(name):
    lm = load_model(name)
    assert lm.module is None and lm.graph.inputs == ["x"] and sum(n.op == "spmm" for n in lm.graph.nodes()) == 2
    assert lm.source_hash == load_model(name).source_hash != load_model("gcn-karate").source_hash


def test_output_metrics_without_labelled_rows():
    logits = np.eye(3)
    m = OutputMetrics.compare(logits, logits, np.full(3, -1))
    assert m.accuracy_float is None and m.max_abs_error_vs_float == 0.0


def test_cora_retraining_reproduces_shipped_weights():
    state = train_planetoid_gcn("gcn-cora")
    if npz_bytes(state) != weights_path("gcn-cora").read_bytes():  # other CPU/BLAS: not bit-exact
        with np.load(weights_path("gcn-cora"), allow_pickle=False) as z:
            shipped = {k: np.array(z[k]) for k in z.files}
        assert abs(evaluate("gcn-cora", state) - evaluate("gcn-cora", shipped)) <= 2.0
        pytest.skip("retrained gcn-cora weights differ bitwise on this machine (accuracy within 2 points)")


def test_train_cli_rejects_unknown_model(capsys):
    assert main(["gcn-cora-like"]) == 2
    assert "unknown trained GCN 'gcn-cora-like'" in capsys.readouterr().err


def test_train_cli_writes_into_out_dir(tmp_path, capsys):
    assert main(["gcn-karate", "--out", str(tmp_path / "w")]) == 0
    assert "gcn-karate: float accuracy" in capsys.readouterr().out
    written = (tmp_path / "w" / "gcn-karate.npz").read_bytes()
    if written != weights_path("gcn-karate").read_bytes():
        pytest.skip("retrained karate weights differ bitwise on this machine")
