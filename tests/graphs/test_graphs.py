"""Graph data: karate club, seeded power-law synthetic graphs, presets, file loading, GCN normalisation."""

import numpy as np
import pytest

from hwforge.errors import ConfigError
from hwforge.graphs import (
    PRESETS,
    karate_club,
    load_graph_file,
    normalized_adjacency,
    preset_graph,
    synthetic_features,
    synthetic_graph,
)


def _simple(g) -> None:
    """No self loops, no duplicate edges, rows sorted, CSR well formed."""
    src, dst = g.edge_index()
    assert g.indptr[0] == 0 and g.indptr[-1] == g.num_edges and np.all(np.diff(g.indptr) >= 0)
    assert not np.any(src == dst)
    assert len(np.unique(dst * g.num_nodes + src)) == g.num_edges
    for v in range(0, g.num_nodes, max(1, g.num_nodes // 50)):
        row = g.indices[g.indptr[v] : g.indptr[v + 1]]
        assert np.all(np.diff(row) > 0)


def test_karate_club():
    g = karate_club()
    assert (g.num_nodes, g.num_edges) == (34, 156) and g.is_symmetric()
    assert g.labels.tolist().count(0) == 17 and g.labels[0] == 0 and g.labels[33] == 1
    _simple(g)


@pytest.mark.parametrize("nodes,edges,symmetric", [(500, 4000, True), (100, 301, False), (10, 90, True),
                                                   (10, 80, False), (30, 0, True)])
def test_synthetic_exact_counts_and_deterministic(nodes, edges, symmetric):
    g = synthetic_graph(nodes, edges, seed=3, symmetric=symmetric)
    assert (g.num_nodes, g.num_edges) == (nodes, edges)
    _simple(g)
    assert g.is_symmetric() or not symmetric
    again = synthetic_graph(nodes, edges, seed=3, symmetric=symmetric)
    assert np.array_equal(g.indptr, again.indptr) and np.array_equal(g.indices, again.indices)


def test_synthetic_seed_matters_and_degrees_are_heavy_tailed():
    a, b = synthetic_graph(2000, 16000, 0), synthetic_graph(2000, 16000, 1)
    assert not np.array_equal(a.indices, b.indices)
    deg = a.degrees()
    assert deg.max() > 8 * deg.mean()  # hubs, as in a power law (a uniform random graph would be ~2x)
    assert np.median(deg) < deg.mean()


def test_synthetic_errors():
    with pytest.raises(ConfigError, match="even number"):
        synthetic_graph(10, 7)
    with pytest.raises(ConfigError, match="do not fit"):
        synthetic_graph(10, 92)
    with pytest.raises(ConfigError, match="nodes"):
        synthetic_graph(1, 0)


@pytest.mark.parametrize("name", ["cora-like", "pubmed-like", "syn500"])
def test_presets(name):
    g, x = preset_graph(name)
    ps = PRESETS[name]
    assert (g.num_nodes, g.num_edges, x.shape) == (ps.nodes, ps.edges, (ps.nodes, ps.features))
    assert g.is_symmetric() and x.dtype == np.float32
    assert abs((x != 0).mean() - ps.density) < 0.01
    if name == "cora-like":
        assert (g.num_nodes, g.num_edges, x.shape[1]) == (2708, 10556, 1433) and set(np.unique(x)) <= {0.0, 1.0}
    if name == "pubmed-like":
        assert (g.num_nodes, g.num_edges, x.shape[1]) == (19717, 88648, 500)


def test_features_seeded():
    a = synthetic_features(50, 8, seed=1)
    assert np.array_equal(a, synthetic_features(50, 8, seed=1))
    assert not np.array_equal(a, synthetic_features(50, 8, seed=2))
    assert 0.0 <= a.min() and a.max() < 1.0


def test_normalized_adjacency_matches_dense_formula():
    g = synthetic_graph(40, 120, 5, symmetric=False)
    csr = normalized_adjacency(g)
    n = g.num_nodes
    a = np.zeros((n, n))
    src, dst = g.edge_index()
    a[dst, src] = 1.0
    a += np.eye(n)
    dinv = 1.0 / np.sqrt(a.sum(axis=1))
    want = dinv[:, None] * a * dinv[None, :]
    got = np.zeros((n, n))
    got[np.repeat(np.arange(n), np.diff(csr.indptr)), csr.indices] = csr.values
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert csr.values.dtype == np.float32 and csr.indptr.dtype == np.int64 and csr.indices.dtype == np.int64
    assert csr.indptr[-1] == g.num_edges + n
    for v in range(n):
        row = csr.indices[csr.indptr[v] : csr.indptr[v + 1]]
        assert np.all(np.diff(row) > 0) and v in row


def test_load_edge_list(tmp_path):
    p = tmp_path / "g.txt"
    p.write_text("# a comment\n0 1\n1 2  # trailing\n\n2 0\n2 0\n3 3\n1,4\n")
    g = load_graph_file(p)
    assert g.name == "g" and g.num_nodes == 5 and g.num_edges == 4  # duplicate and self loop dropped
    assert sorted(zip(*g.edge_index().tolist(), strict=True)) == [(0, 1), (1, 2), (1, 4), (2, 0)]
    s = load_graph_file(p, symmetrize=True)
    assert s.num_edges == 8 and s.is_symmetric()
    c = tmp_path / "g.csv"
    c.write_text("0,1\n1,0\n")
    assert load_graph_file(c).num_edges == 2


def test_load_npz_round_trip(tmp_path):
    g = synthetic_graph(60, 300, 2)
    p = tmp_path / "g.npz"
    np.savez(p, indptr=g.indptr, indices=g.indices.astype(np.int32), num_nodes=np.int64(60))
    h = load_graph_file(p)
    assert np.array_equal(h.indptr, g.indptr) and np.array_equal(h.indices, g.indices)


@pytest.mark.parametrize("name,content,msg", [
    ("a.txt", "0 1\n1\n", "line 2: expected 'u v'"),
    ("a.txt", "0 x\n", "line 1: node ids must be integers"),
    ("a.txt", "0 -1\n", "must be >= 0"),
    ("a.txt", "# nothing\n", "no edges"),
    ("a.json", "{}", "unknown format"),
    ("a.npz", "not a zip", "not a readable .npz"),
])
def test_load_errors_text(tmp_path, name, content, msg):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(ConfigError, match=msg) as e:
        load_graph_file(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("arrays,msg", [
    ({"indptr": np.array([0, 1])}, "missing array 'indices'"),
    ({"indptr": np.array([0, 1.0]), "indices": np.array([0])}, "1-D integer"),
    ({"indptr": np.array([0, 2, 1]), "indices": np.array([0])}, "indptr"),
    ({"indptr": np.array([0, 1, 1]), "indices": np.array([5])}, "'indices' must be node ids"),
    ({"indptr": np.array([0, 1, 1]), "indices": np.array([1]), "num_nodes": np.array(3)}, "num_nodes"),
    ({"indptr": np.array([0, 1]), "indices": np.array([object()], dtype=object)}, "pickle"),
])
def test_load_errors_npz(tmp_path, arrays, msg):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(ConfigError, match=msg) as e:
        load_graph_file(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_graph_file(tmp_path / "missing.txt")
