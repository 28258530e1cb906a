"""Converter of the Planetoid citation graphs to the ``.npz`` hwforge ships:
``python -m hwforge.graphs.planetoid_convert RAW_DIR NAME OUT.npz`` (NAME: cora or citeseer).

RAW_DIR holds the ``ind.NAME.*`` files of Kipf & Welling's GCN repository (tkipf/gcn, ``gcn/data``). The
conversion replays its ``load_data`` exactly: test indices sorted; for CiteSeer, the ids of the test range
missing from ``tx`` (the reference calls them isolated) get zero feature rows and label 0; features =
vstack(allx, tx) and labels = argmax(vstack(ally, ty)), with the test rows moved to the ids in ``test.index``;
adjacency = the ``graph`` dict symmetrised (self loops and duplicates dropped: hwforge's normalisation adds
the identity itself); train = range(len(y)), val = the next 500 ids, test = the sorted test ids.

The raw files are Python 2 pickles. They are read by `RestrictedUnpickler`, which resolves only the six globals
those files name (numpy array reconstruction, scipy's CSR matrix, ``defaultdict``, ``list``) and refuses anything
else, so a tampered file cannot run code. The output is written byte-stably (`hwforge.npzio`): converting the
same files twice gives identical bytes. Needs scipy (installed with scikit-learn); loading the result does not.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

from hwforge.errors import ConfigError
from hwforge.graphs.data import GraphData, from_edges
from hwforge.graphs.planetoid import NAMES, pack_features
from hwforge.npzio import npz_bytes

RAW_PARTS = ("x", "y", "tx", "ty", "allx", "ally", "graph")
VAL_SIZE = 500


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Exactly the globals the Planetoid pickles name (Python 2 module names, as they appear in the files)."""
    import collections

    import scipy.sparse

    try:
        from numpy._core.multiarray import _reconstruct  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("scipy.sparse.csr", "csr_matrix"): scipy.sparse.csr_matrix,
        ("collections", "defaultdict"): collections.defaultdict,
        ("__builtin__", "list"): list,
    }


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of `_allowed_globals`; any other is an UnpicklingError
    naming it. Use with ``encoding="latin1"`` (the files are Python 2 pickles holding numpy buffers)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            msg = f"refusing to load {module}.{name} (not one of the globals Planetoid files use)"
            raise pickle.UnpicklingError(msg) from None


def _read_pickle(path: Path) -> Any:
    try:
        with path.open("rb") as f:
            return RestrictedUnpickler(f, encoding="latin1").load()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from None
    except Exception as e:  # a malformed pickle can raise almost anything
        why = " ".join(str(e).split()) or type(e).__name__
        raise ConfigError(f"{path}: not a readable Planetoid pickle: {why}") from None


def read_raw(raw_dir: str | Path, name: str) -> dict[str, Any]:
    """The ``ind.NAME.*`` objects of ``raw_dir``, with ``test.index`` as an int64 array (file order)."""
    d = Path(raw_dir)
    if not d.is_dir():
        raise ConfigError(f"Planetoid raw folder {d} does not exist")
    missing = [p for p in (*RAW_PARTS, "test.index") if not (d / f"ind.{name}.{p}").is_file()]
    if missing:
        raise ConfigError(f"Planetoid raw folder {d}: missing {', '.join(f'ind.{name}.{p}' for p in missing)}")
    raw = {part: _read_pickle(d / f"ind.{name}.{part}") for part in RAW_PARTS}
    index_file = d / f"ind.{name}.test.index"
    try:
        raw["test.index"] = np.array([int(line) for line in index_file.read_text().split()], dtype=np.int64)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"{index_file}: expected one integer node id per line ({e})") from None
    return raw


def convert(raw_dir: str | Path, name: str) -> dict[str, np.ndarray]:
    """The arrays of the converted data set (see the module docstring for the preprocessing)."""
    import scipy.sparse as sp

    raw = read_raw(raw_dir, name)
    where = f"Planetoid raw folder {raw_dir} ({name})"
    x, y, tx, ty, allx, ally = (raw[k] for k in RAW_PARTS[:6])
    if not all(sp.issparse(m) for m in (x, tx, allx)) or not all(
            isinstance(m, np.ndarray) and m.ndim == 2 for m in (y, ty, ally)):
        raise ConfigError(f"{where}: x/tx/allx must be sparse matrices and y/ty/ally 2-D arrays")
    test_reorder = raw["test.index"]
    test_range = np.sort(test_reorder)
    if tx.shape[0] != ty.shape[0] or tx.shape[0] != test_reorder.shape[0] or allx.shape[0] != ally.shape[0]:
        raise ConfigError(f"{where}: tx, ty and test.index (or allx and ally) differ in length")
    if len({x.shape[1], tx.shape[1], allx.shape[1]}) != 1 or len({y.shape[1], ty.shape[1], ally.shape[1]}) != 1:
        raise ConfigError(f"{where}: x/tx/allx (or y/ty/ally) differ in width")
    tx, ty = tx.toarray(), np.asarray(ty)
    if name == "citeseer":  # ids of the test range absent from tx/ty (15): zero rows there
        full = int(test_range.max() - test_range.min() + 1)
        tx_ext, ty_ext = np.zeros((full, tx.shape[1]), tx.dtype), np.zeros((full, ty.shape[1]), ty.dtype)
        tx_ext[test_range - test_range.min()] = tx
        ty_ext[test_range - test_range.min()] = ty
        tx, ty = tx_ext, ty_ext
    features = np.vstack([allx.toarray(), tx])
    onehot = np.vstack([np.asarray(ally), ty])
    n = features.shape[0]
    if test_range.min() < 0 or test_range.max() >= n:
        raise ConfigError(f"{where}: test.index holds ids outside 0..{n - 1}")
    features[test_reorder] = features[test_range]  # the right-hand side is a copy: a permutation of rows
    onehot[test_reorder] = onehot[test_range]
    graph = _adjacency(raw["graph"], n, where)
    train = np.arange(y.shape[0], dtype=np.int32)
    return {
        "indptr": graph.indptr.astype(np.int32), "indices": graph.indices.astype(np.int32),
        "features_bits": pack_features(features), "num_features": np.array([features.shape[1]], np.int32),
        "labels": onehot.argmax(axis=1).astype(np.int16), "num_classes": np.array([onehot.shape[1]], np.int32),
        "train": train, "val": np.arange(y.shape[0], y.shape[0] + VAL_SIZE, dtype=np.int32),
        "test": test_range.astype(np.int32),
    }


def _adjacency(adj: Any, n: int, where: str) -> GraphData:
    """The dict-of-lists graph as a symmetric CSR without self loops or duplicates (nx.from_dict_of_lists)."""
    if not isinstance(adj, dict):
        raise ConfigError(f"{where}: graph must be a dict of neighbour lists, got {type(adj).__name__}")
    try:
        src = np.array([int(u) for u, vs in adj.items() for _ in vs], dtype=np.int64)
        dst = np.array([int(v) for vs in adj.values() for v in vs], dtype=np.int64)
        keys = np.array([int(u) for u in adj], dtype=np.int64)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: graph keys and neighbours must be integer node ids") from None
    if any(a.size and (a.min() < 0 or a.max() >= n) for a in (src, dst, keys)):
        raise ConfigError(f"{where}: graph names node ids outside 0..{n - 1}")
    return from_edges("", n, np.concatenate([src, dst]), np.concatenate([dst, src]))


def summary(name: str, arrays: dict[str, np.ndarray]) -> str:
    """One line: nodes, edges, features, classes, split sizes."""
    n, e = arrays["indptr"].shape[0] - 1, arrays["indices"].shape[0]
    return (f"{name}: {n} nodes, {e} directed edges ({e // 2} undirected), {int(arrays['num_features'][0])} features, "
            f"{int(arrays['num_classes'][0])} classes, train {arrays['train'].size} / val {arrays['val'].size} / "
            f"test {arrays['test'].size}")


def main(argv: list[str] | None = None) -> int:
    """Convert the Planetoid files of one data set to hwforge's compact ``.npz``."""
    parser = argparse.ArgumentParser(prog="python -m hwforge.graphs.planetoid_convert", description=main.__doc__)
    parser.add_argument("raw_dir", type=Path, help="folder holding ind.NAME.{x,y,tx,ty,allx,ally,graph,test.index}")
    parser.add_argument("name", choices=NAMES, help="data set")
    parser.add_argument("out", type=Path, help="output .npz")
    args = parser.parse_args(argv)
    try:
        arrays = convert(args.raw_dir, args.name)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    blob = npz_bytes(arrays)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(blob)
    print(f"{summary(args.name, arrays)} -> {args.out} ({len(blob)} bytes, sha256 {hashlib.sha256(blob).hexdigest()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
