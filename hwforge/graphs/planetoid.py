"""The Planetoid citation graphs (Cora, CiteSeer) shipped with hwforge.

``planetoid_graph("cora")`` reads ``hwforge/graphs/datasets/cora.npz`` (``allow_pickle=False``) and returns a
`PlanetoidData`: the graph as `GraphData` (labels set), the binary bag-of-words features as float32, the class
count and the standard split of Kipf & Welling's GCN (train = the first 140 (Cora) / 120 (CiteSeer) ids, val =
the next 500, test = the 1,000 test ids). ``row_normalize`` is that reference's feature preprocessing.

The files were converted from the reference's raw pickles by `hwforge.graphs.planetoid_convert` (see
``hwforge/graphs/datasets/PROVENANCE.txt``); features are stored as a bitmap and restored exactly.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from hwforge.errors import ConfigError
from hwforge.graphs.data import GraphData, from_edges

NAMES = ("cora", "citeseer")


@dataclass(frozen=True)
class PlanetoidData:
    """A citation graph with features, labels and the standard semi-supervised split (index arrays)."""

    graph: GraphData  # labels: int64 class per node
    features: np.ndarray  # float32 [num_nodes, num_features], 0/1 bag of words (not normalised)
    num_classes: int
    train: np.ndarray  # int64 node ids
    val: np.ndarray
    test: np.ndarray


def dataset_path(name: str) -> Path:
    """Where the converted ``name`` ships inside the package."""
    return Path(str(resources.files("hwforge.graphs") / "datasets" / f"{name}.npz"))


def planetoid_graph(name: str) -> PlanetoidData:
    """The shipped Planetoid data set ``name`` (``cora`` or ``citeseer``)."""
    if name not in NAMES:
        raise ConfigError(f"unknown Planetoid data set '{name}' (available: {', '.join(NAMES)})")
    return load_planetoid_npz(dataset_path(name), name)


def load_planetoid_npz(path: str | Path, name: str | None = None) -> PlanetoidData:
    """Read a file written by `hwforge.graphs.planetoid_convert` (plain arrays only, no pickle)."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            a = {k: np.array(z[k]) for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ConfigError(f"Planetoid file {p}: not readable ({' '.join(str(e).split())})") from None
    missing = sorted({"indptr", "indices", "features_bits", "num_features", "labels", "num_classes", "train",
                      "val", "test"} - set(a))
    if missing:
        raise ConfigError(f"Planetoid file {p}: missing arrays {', '.join(missing)}")
    n = a["indptr"].shape[0] - 1
    if a["labels"].shape != (n,) or a["features_bits"].shape[0] != n or a["indptr"][-1] != a["indices"].shape[0]:
        raise ConfigError(f"Planetoid file {p}: arrays disagree on the node or edge count")
    labels = a["labels"].astype(np.int64)
    dst = np.repeat(np.arange(n, dtype=np.int64), np.diff(a["indptr"].astype(np.int64)))
    graph = from_edges(name or p.stem, n, a["indices"], dst, labels)
    features = unpack_features(a["features_bits"], _count(a["num_features"]))
    split = {k: a[k].astype(np.int64) for k in ("train", "val", "test")}
    return PlanetoidData(graph, features, _count(a["num_classes"]), **split)


def _count(a: np.ndarray) -> int:
    """A count stored as a one-element array."""
    return int(a.reshape(-1)[0])


def pack_features(features: np.ndarray) -> np.ndarray:
    """0/1 features as a bitmap (``np.packbits`` along rows): 8x smaller, and exact."""
    f = np.asarray(features)
    if not np.isin(f, (0, 1)).all():
        raise ConfigError("Planetoid features must be 0/1 (bag of words) to be stored as a bitmap")
    return np.packbits(f.astype(bool), axis=1)


def unpack_features(bits: np.ndarray, num_features: int) -> np.ndarray:
    """The float32 0/1 matrix `pack_features` stored."""
    return np.unpackbits(bits, axis=1, count=num_features).astype(np.float32)


def row_normalize(features: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (all-zero rows stay zero), as the reference's ``preprocess_features``;
    computed in float64, rounded once to float32."""
    f = np.asarray(features, dtype=np.float64)
    s = f.sum(axis=1, keepdims=True)
    return np.divide(f, s, out=np.zeros_like(f), where=s != 0).astype(np.float32)
