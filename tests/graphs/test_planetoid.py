"""The shipped Cora / CiteSeer data (sizes, split, symmetric graph, exact features), the converter's restricted
unpickler and error messages, and (with the raw files at hand) that converting reproduces the shipped bytes.

The raw Planetoid files are not part of the repository: set HWFORGE_PLANETOID_RAW to a folder holding
``ind.NAME.*`` (or ``NAME/raw/ind.NAME.*``) to run the conversion tests; the loader tests never need them.
"""

import collections
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hwforge.errors import ConfigError
from hwforge.graphs import load_planetoid_npz, planetoid_graph, row_normalize
from hwforge.graphs.planetoid import dataset_path, pack_features, unpack_features
from hwforge.graphs.planetoid_convert import RAW_PARTS, RestrictedUnpickler, main
from hwforge.npzio import npz_bytes

# name: nodes, directed edges, features, classes, training nodes (measured on the converted files; the
# edge counts equal torch_geometric's Planetoid: Cora 5,278 and CiteSeer 4,552 undirected edges)
EXPECTED = {"cora": (2708, 10556, 1433, 7, 140), "citeseer": (3327, 9104, 3703, 6, 120)}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_data_sizes_and_split(name):
    d = planetoid_graph(name)
    n, e, f, c, ntrain = EXPECTED[name]
    g = d.graph
    assert (g.num_nodes, g.num_edges, d.features.shape, d.num_classes) == (n, e, (n, f), c)
    assert g.name == name and g.is_symmetric()
    src, dst = g.edge_index()
    assert not np.any(src == dst) and len(np.unique(dst * n + src)) == e  # no self loops, no duplicates
    assert d.features.dtype == np.float32 and set(np.unique(d.features)) == {0.0, 1.0}
    assert g.labels.dtype == np.int64 and g.labels.shape == (n,) and set(np.unique(g.labels)) == set(range(c))
    np.testing.assert_array_equal(d.train, np.arange(ntrain))
    np.testing.assert_array_equal(d.val, np.arange(ntrain, ntrain + 500))
    assert d.test.size == 1000 and np.all(np.diff(d.test) > 0) and d.test.max() < n
    assert not set(d.test) & set(d.train) and not set(d.test) & set(d.val)
    assert all(np.bincount(g.labels[d.train], minlength=c) == ntrain // c)  # the split's 20 labels per class


def test_unknown_data_set_and_bad_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown Planetoid data set 'pubmed'"):
        planetoid_graph("pubmed")
    p = tmp_path / "x.npz"
    p.write_bytes(npz_bytes({"indptr": np.array([0, 0], np.int32)}))
    with pytest.raises(ConfigError, match="missing arrays .*features_bits"):
        load_planetoid_npz(p)
    p.write_text("not a zip")
    with pytest.raises(ConfigError, match="not readable"):
        load_planetoid_npz(p)


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 40)), elements=st.integers(0, 1)))
def test_feature_bitmap_round_trips_exactly(f):
    bits = pack_features(f)
    assert bits.dtype == np.uint8 and bits.shape == (f.shape[0], (f.shape[1] + 7) // 8)
    np.testing.assert_array_equal(unpack_features(bits, f.shape[1]), f.astype(np.float32))


def test_feature_bitmap_refuses_non_binary():
    with pytest.raises(ConfigError, match="0/1"):
        pack_features(np.array([[0.0, 0.5]]))


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 12)), elements=st.sampled_from([0.0, 1.0])))
def test_row_normalize_rows_sum_to_one_or_stay_zero(f):
    r = row_normalize(f)
    sums = r.astype(np.float64).sum(axis=1)
    empty = f.sum(axis=1) == 0
    assert r.dtype == np.float32 and np.all(r[empty] == 0)
    np.testing.assert_allclose(sums[~empty], 1.0, rtol=1e-6)
    assert np.array_equal(r > 0, f > 0)


# ----------------------------------------------------------------------------------- restricted unpickler
class _RunsCommand:
    """What a malicious pickle would hold: unpickling it calls os.system."""

    def __init__(self, command: str = "true") -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


@pytest.mark.parametrize("obj,name", [(_RunsCommand(), "system"), (collections.OrderedDict(a=1), "OrderedDict"),
                                      (np.arange(3), "_reconstruct")])  # numpy 2's module path is not allowed
def test_restricted_unpickler_refuses_other_globals(obj, name):
    blob = pickle.dumps(obj, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match=f"refusing to load .*{name}"):
        RestrictedUnpickler(io.BytesIO(blob), encoding="latin1").load()


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.integers(0, 500), st.lists(st.integers(0, 500), max_size=6), max_size=20))
def test_restricted_unpickler_reads_an_adjacency_dict(adj):
    """The graph files' form: a defaultdict(list) of int lists, pickled by Python 2 (protocol 2 writes
    ``__builtin__.list``, the name those files use)."""
    blob = pickle.dumps(collections.defaultdict(list, adj), protocol=2)
    got = RestrictedUnpickler(io.BytesIO(blob), encoding="latin1").load()
    assert isinstance(got, collections.defaultdict) and got.default_factory is list and dict(got) == adj


def _fake_raw(folder: Path, name: str, content: dict[str, bytes]) -> Path:
    folder.mkdir(exist_ok=True)
    for part in (*RAW_PARTS, "test.index"):
        (folder / f"ind.{name}.{part}").write_bytes(content.get(part, b"garbage"))
    return folder


def _error_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_converter_errors(tmp_path, capsys):
    out = str(tmp_path / "o.npz")
    assert "does not exist" in _error_line(capsys, [str(tmp_path / "nope"), "cora", out])
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "ind.cora.x").write_bytes(b"")
    assert "missing ind.cora.y, ind.cora.tx" in _error_line(capsys, [str(tmp_path / "half"), "cora", out])
    bad = _fake_raw(tmp_path / "bad", "cora", {})
    assert "ind.cora.x: not a readable Planetoid pickle" in _error_line(capsys, [str(bad), "cora", out])
    marker = tmp_path / "ran"
    evil = _fake_raw(tmp_path / "evil", "cora", {"x": pickle.dumps(_RunsCommand(f"touch {marker}"), protocol=2)})
    err = _error_line(capsys, [str(evil), "cora", out])
    assert "refusing to load" in err and "system" in err and not marker.exists()
    assert not Path(out).exists()


def test_converter_cli_usage_error():
    proc = subprocess.run([sys.executable, "-m", "hwforge.graphs.planetoid_convert", "x", "pubmed", "o.npz"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "invalid choice: 'pubmed'" in proc.stderr


# -------------------------------------------------------------------------------- conversion (raw files)
def _raw_dir(name: str) -> Path:
    root = os.environ.get("HWFORGE_PLANETOID_RAW")
    if not root:
        pytest.skip("HWFORGE_PLANETOID_RAW is not set (the raw Planetoid files are not part of the repository)")
    for d in (Path(root), Path(root) / name / "raw"):
        if (d / f"ind.{name}.graph").is_file():
            return d
    pytest.skip(f"no ind.{name}.* files under {root}")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_conversion_is_deterministic_and_reproduces_the_shipped_file(name, tmp_path, capsys):
    raw = _raw_dir(name)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main([str(raw), name, str(a)]) == 0 and main([str(raw), name, str(b)]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    n, e, f, c, ntrain = EXPECTED[name]
    assert f"{n} nodes, {e} directed edges" in line and f"train {ntrain} / val 500 / test 1000" in line
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() == dataset_path(name).read_bytes()
